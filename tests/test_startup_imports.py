"""Start-up cost stays low: importing the command line, and a dry run that needs no image
builder, remote client or ignore rules, do not import the libraries only other commands
need. Checked in a fresh interpreter's ``sys.modules``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .bundle_helpers import cli_env, write

#: never needed to parse the command line
NOT_AT_IMPORT = (
    "docker",
    "networkx",
    "connectrpc",
    "pyqwest",
    "httpx",
    "fsspec",
    "pathspec",
    "yaml",
    "flyteidl2",
    "google.protobuf",
)
#: never needed by a loaded_modules dry run with the embedded backend
NOT_IN_DRY_RUN = ("docker", "networkx", "connectrpc", "pyqwest", "httpx", "pathspec", "yaml")

PROBE = """
import json, sys
{body}
print(json.dumps(sorted(name for name in {names!r} if name in sys.modules)))
"""


def loaded(body: str, names: tuple[str, ...], cwd: Path) -> list[str]:
    script = PROBE.format(body=body, names=names)
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=cwd, env=cli_env(), capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_importing_the_cli_loads_no_heavy_library(tmp_path):
    assert loaded("import flyte_deploy.cli", NOT_AT_IMPORT, tmp_path) == []


def test_a_dry_run_loads_no_builder_remote_client_or_ignore_library(tmp_path):
    write(
        tmp_path,
        {
            "envs.py": """
        import flyte_deploy as fd

        base = fd.TaskEnvironment(name="base")
        top = fd.TaskEnvironment(name="top", depends_on=[base])


        @top.task
        def one(x: int) -> int:
            return x + 1
    """
        },
    )
    body = (
        "from flyte_deploy.cli import cli, run_cli\n"
        "code = run_cli(cli, ['deploy', '--all', 'envs.py', '--dry-run', '--output', 'json', '-q'])\n"
        "assert code == 0, code"
    )
    assert loaded(body, NOT_IN_DRY_RUN, tmp_path) == []
