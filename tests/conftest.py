"""Shared test helpers: isolated imports, project builders and an in-process CLI runner."""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from flyte_deploy.cli import cli, run_cli

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "ml_pipeline"


@pytest.fixture(autouse=True)
def isolated_imports(deploy_isolation, tmp_path_factory, monkeypatch):
    """Every test runs under the kit's ``deploy_isolation``: discovery imports user files by
    module name, so two tests' ``envs.py`` must never meet; FLYTE_DEPLOY_* is cleared, and
    the bundle signature cache is the test's own."""
    monkeypatch.setenv("FLYTE_DEPLOY_CACHE_DIR", str(tmp_path_factory.mktemp("signature-cache")))
    return deploy_isolation


def write_tree(root: Path, files: dict[str, str]) -> Path:
    """Write ``files`` (relative path -> text, dedented) under ``root``."""
    for name, text in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text).lstrip("\n"))
    return root


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@pytest.fixture
def invoke(capsys):
    """Run ``flyte-deploy ARGS`` in process; returns exit code and captured output."""

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = run_cli(cli, [str(a) for a in args])
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return run


@pytest.fixture
def project(tmp_path):
    """A temporary project directory and a writer for its files."""

    def make(files: dict[str, str]) -> Path:
        return write_tree(tmp_path / "proj", files)

    return make
