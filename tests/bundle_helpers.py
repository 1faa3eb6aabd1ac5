"""Shared helpers of the bundle, upload and version tests: a sample project whose tasks
import a helper package, read a data file and import a module dynamically; the CLI in a
subprocess; and a clean interpreter that sees only an extracted bundle."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flyte_deploy.testing import AUTOLOAD_VARIABLES

SRC = Path(__file__).resolve().parent.parent / "src"

FLOWS = """
import importlib
import json
import os

import flyte_deploy as fd
from helpers import numbers
from helpers.text import shout

shop = fd.TaskEnvironment(name="shop", resources=fd.Resources(cpu=1, memory="1Gi"))
audit = fd.TaskEnvironment(name="audit", depends_on=[shop])

PRICES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "prices.json")


@shop.task
def total() -> float:
    with open(PRICES) as handle:
        return numbers.add_all(json.load(handle).values())


@shop.task
def plugin_name() -> str:
    return importlib.import_module("dynamic.extra").NAME


@audit.task
def check() -> str:
    return shout("ok")
"""


def write(root: Path, files: Mapping[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))


def make_project(root: Path) -> Path:
    """The sample project: ``flows.py`` (environments shop and audit), the ``helpers``
    package, ``data/prices.json``, ``dynamic/extra.py`` (only imported at run time)."""
    write(
        root,
        {
            "pyproject.toml": '[project]\nname = "shop"\nversion = "0"\n\n[tool.flyte-deploy]\nproject = "tests"\n',
            "flows.py": FLOWS,
            "helpers/__init__.py": '"""Helpers."""\n',
            "helpers/numbers.py": "def add_all(values):\n    return float(sum(values))\n",
            "helpers/text.py": "def shout(text):\n    return text.upper() + '!'\n",
            "data/prices.json": '{"apple": 1.5, "pear": 2.25}\n',
            "dynamic/__init__.py": "",
            "dynamic/extra.py": 'NAME = "extra-plugin"\n',
            "README.md": "# shop\n",
        },
    )
    return root


def cli_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("FLYTE_DEPLOY_") or k in AUTOLOAD_VARIABLES or k == "FLYTE_DEPLOY_CACHE_DIR"
    }  # the test's own signature cache
    env.update({"PYTHONPATH": str(SRC), "PYTHONDONTWRITEBYTECODE": "1"})
    env.update(extra or {})
    return env


def cli(args: list[str], cwd: Path, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess:
    """``flyte-deploy ARGS`` in a fresh process with this worktree's code."""
    return subprocess.run(
        [sys.executable, "-m", "flyte_deploy", *args],
        cwd=cwd,
        env=cli_env(env),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def deploy_json(args: list[str], cwd: Path, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    result = cli(["deploy", *args, "--output", "json", "-q"], cwd, env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def dry(invoke: Any, *args: str) -> dict[str, Any]:
    """The ``--output json`` plan of ``deploy ARGS --dry-run``, through the ``invoke``
    fixture's in-process CLI; a non-zero exit fails the test with its stderr."""
    result = invoke("deploy", *args, "--dry-run", "--output", "json", "-q")
    assert result.exit_code == 0, result.stderr
    return result.json()


def local_archive(result: Mapping[str, Any]) -> Path:
    """The local path of a deploy's bundle (file:// URI in the JSON output)."""
    uri = result["bundle"]["uri"]
    assert uri.startswith("file://"), uri
    return Path(uri[len("file://") :])


def run_in_bundle(extracted: Path, code: str, workdir: Path) -> subprocess.CompletedProcess:
    """Run ``code`` in a clean interpreter whose only project code is ``extracted`` (the
    way a runtime loads a task from its bundle); flyte-deploy stands for the image's SDK."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update({"PYTHONPATH": os.pathsep.join([str(extracted), str(SRC)]), "PYTHONDONTWRITEBYTECODE": "1"})
    workdir.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, "-c", code], cwd=workdir, env=env, capture_output=True, text=True, timeout=120, check=False
    )
