"""Without the Flyte SDK the core works as before: the ``flyte`` adapter is not registered
and nothing imports ``flyte`` (a subprocess where ``import flyte`` fails)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WITHOUT_FLYTE = "import sys; sys.modules['flyte'] = None; from flyte_deploy.cli import main; main(sys.argv[1:])"


def cli_without_flyte(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_FLYTE, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_without_flyte_the_adapter_is_absent_and_our_sdk_deploys(tmp_path):
    listed = cli_without_flyte(tmp_path, "plugins", "--json")
    assert listed.returncode == 0, listed.stderr
    names = [p["name"] for p in json.loads(listed.stdout)["plugins"]]
    assert "flyte" not in names and "serialize" in names
    root = tmp_path / "ml_pipeline"
    shutil.copytree(REPO / "examples" / "ml_pipeline", root, ignore=shutil.ignore_patterns(".flyte-deploy"))
    deployed = cli_without_flyte(root, "deploy", "workflow.py", "viz_env", "-q", "--output", "json")
    assert deployed.returncode == 0, deployed.stderr
    assert len(json.loads(deployed.stdout)["registrations"]) == 3


def test_without_flyte_a_flyte_file_fails_to_import_naming_the_line(tmp_path):
    (tmp_path / "hello.py").write_text("import flyte\nenv = flyte.TaskEnvironment(name='x')\n")
    result = cli_without_flyte(tmp_path, "deploy", "hello.py", "env", "--dry-run")
    assert result.returncode == 5
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {tmp_path / 'hello.py'}:1: error importing")
