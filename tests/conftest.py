"""Shared test helpers: isolated imports, project builders and an in-process CLI runner."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from flyte_deploy.cli import cli, run_cli

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "ml_pipeline"


@pytest.fixture(autouse=True)
def isolated_imports(monkeypatch):
    """Discovery imports user files by module name: restore sys.modules and sys.path after
    each test so two tests' ``envs.py`` never meet; clear FLYTE_DEPLOY_* settings."""
    modules = dict(sys.modules)
    path = list(sys.path)
    for key in [k for k in os.environ if k.startswith("FLYTE_DEPLOY_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    yield
    for name in [n for n in sys.modules if n not in modules]:
        del sys.modules[name]
    sys.modules.update(modules)
    sys.path[:] = path


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
