"""What examples/flyte_hello/README.md promises of its app: ``deploy api.py app_env`` deploys
the ``hello`` task environment first and then the app, ``serve hello-api`` answers the
README's request from the deployed bundle, and SIGINT stops it with exit 0."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from .bundle_helpers import cli, cli_env, deploy_json

pytest.importorskip("flyte")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "flyte_hello"


def test_the_example_app_deploys_after_its_task_environment_and_serves_the_readme_request(tmp_path):
    root = tmp_path / "flyte_hello"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".flyte-deploy", "__pycache__"))
    result = deploy_json(["api.py", "app_env"], root)
    assert [(r["task"], r["kind"], r["status"]) for r in result["registrations"]] == [
        ("hello.greet", "task", "created"),
        ("hello.shout", "task", "created"),
        ("hello-api", "app", "created"),
    ]
    assert cli(["diff", "api.py", "app_env", "-q"], root).returncode == 0  # nothing would change

    serve = subprocess.Popen(
        [sys.executable, "-m", "flyte_deploy", "serve", "hello-api", "--port", "0"],
        cwd=root,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert serve.stdout is not None
        url = serve.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), serve.stderr.read() if serve.stderr else ""
        with urllib.request.urlopen(f"{url}/hello/World", timeout=30) as answer:
            assert json.loads(answer.read()) == {"greeting": "Hello, World."}
    finally:
        serve.send_signal(signal.SIGINT)
        code = serve.wait(timeout=60)
    assert code == 0
