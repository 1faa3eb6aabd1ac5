"""``flyte-deploy run`` against a Flyte control plane: the spec comes from the real fake
TaskService on 127.0.0.1 (tests/fixtures/flyte_server.py), the bundle from shared storage
(file://, and S3 served by rclone), never from the source tree or the local store."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from flyteidl2.task import task_service_pb2
from google.protobuf import timestamp_pb2

from flyte_deploy.errors import ExitCode
from flyte_deploy.task_specs import latest_version
from flyte_deploy.testing import AUTOLOAD_VARIABLES
from tests.conftest import EXAMPLE, REPO
from tests.fixtures.processes import free_port
from tests.fixtures.s3 import S3Server

pytestmark = pytest.mark.servers

RAW = "[1, 2, -1, 5]"
TOKEN = "tok-5be1a7c9-never-print-me"


def flyte_deploy(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI in a subprocess from ``cwd``, with this worktree's code and a clean
    flyte-deploy environment plus ``env``."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FLYTE_DEPLOY_", "FLYTE_ADMIN_", "FLYTE_TASK_")) or k in AUTOLOAD_VARIABLES
    }
    base.update(PYTHONPATH=str(REPO / "src"), COLUMNS="200", NO_COLOR="1", HOME=str(cwd.parent / "home"))
    return subprocess.run(
        [sys.executable, "-m", "flyte_deploy", *args],
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


def run_report(cwd: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return flyte_deploy(
        cwd, "run", "visualization.report", "--input", f"raw={RAW}", "--output", "json", *extra, env=env
    )


def outputs(proc: subprocess.CompletedProcess[str]) -> dict:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def expected_report(project: Path) -> str:
    """The report the example's source computes, called directly (what the bundled run must give)."""
    code = f"import asyncio, json, workflow; print(json.dumps(asyncio.run(workflow.report.func({RAW}))))"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": f"{project}:{REPO / 'src'}"},
    )
    return json.loads(proc.stdout)


def write_config(path: Path, endpoint: str, storage: str) -> Path:
    path.write_text(
        f"admin:\n  endpoint: {endpoint}\n  insecure: true\n"
        f"task:\n  project: flytesnacks\n  domain: development\nstorage: {storage}\n"
        "flyte-deploy:\n  retries: 0\n"
    )
    return path


def copy_example(tmp_path: Path) -> Path:
    (tmp_path / "home").mkdir(exist_ok=True)
    project = tmp_path / "ml_pipeline"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".flyte-deploy", "__pycache__"))
    return project


def empty_dir(path: Path) -> None:
    for child in path.iterdir():
        shutil.rmtree(child) if child.is_dir() else child.unlink()


def calls(server) -> list[tuple[str, str]]:
    """(method, task name) of every request the control plane received."""
    names = []
    for method, request, _ in server.service.calls:
        task = request.task_name if method == "ListVersions" else request.task_id
        names.append((method, task.name))
    return names


def deploy_version(project: Path, config: Path, version: str, **env: str) -> None:
    proc = flyte_deploy(
        project, "deploy", "workflow.py", "viz_env", "--version", version, "-q", "--config", str(config), env=env
    )
    assert proc.returncode == 0, proc.stderr


def relabel_report(project: Path, label: str) -> None:
    """Change the report task's code so each version's output says which one ran."""
    workflow = project / "workflow.py"
    text, count = re.subn(r'return f"(\w+ )?loss=', f'return f"{label} loss=', workflow.read_text())
    assert count == 1
    workflow.write_text(text)


def test_run_fetches_the_spec_from_the_control_plane_without_any_source(tmp_path, flyte_server):
    project = copy_example(tmp_path)
    config = write_config(tmp_path / "config.yaml", flyte_server.endpoint, (tmp_path / "bundles").as_uri())
    deploy_version(project, config, "v1")
    expected = expected_report(project)
    assert expected.startswith("loss=")
    empty_dir(project)  # no source, no config, no local store: only the control plane and the bundle storage
    flyte_server.service.calls.clear()

    result = outputs(run_report(project, "--config", str(config)))
    assert result == {"task": "visualization.report", "version": "v1", "outputs": {"o0": expected}}
    assert calls(flyte_server) == [("ListVersions", "visualization.report"), ("GetTaskDetails", "visualization.report")]
    assert list(project.iterdir()) == []

    text = flyte_deploy(
        project, "run", "ml_training.train", "--input", f"raw={RAW}", "--version", "v1", "--config", str(config)
    )
    assert text.returncode == 0, text.stderr
    assert text.stdout.strip().splitlines() == ['o0 = {"loss": 0.17777777777777778, "rows": 3.0}']
    assert calls(flyte_server)[-1] == ("GetTaskDetails", "ml_training.train")  # --version: no ListVersions
    assert list(project.iterdir()) == []


def test_version_selects_an_older_deploy_and_the_default_is_the_latest_deployed(tmp_path, flyte_server):
    project = copy_example(tmp_path)
    write_config(project / "config.yaml", flyte_server.endpoint, (tmp_path / "bundles").as_uri())
    relabel_report(project, "first")
    deploy_version(project, project / "config.yaml", "old")
    relabel_report(project, "second")
    deploy_version(project, project / "config.yaml", "new")  # deployed last, though "new" < "old" as text
    for path in project.iterdir():
        if path.name != "config.yaml":  # the project's config.yaml makes the remote backend the default
            shutil.rmtree(path) if path.is_dir() else path.unlink()

    latest = outputs(run_report(project))
    assert latest["version"] == "new" and latest["outputs"]["o0"].startswith("second loss=")
    older = outputs(run_report(project, "--version", "old"))
    assert older["version"] == "old" and older["outputs"]["o0"].startswith("first loss=")
    assert older["outputs"]["o0"].split(" ", 1)[1] == latest["outputs"]["o0"].split(" ", 1)[1]


def test_latest_is_the_most_recent_deployed_at():
    def row(version: str, seconds: int | None, nanos: int = 0):
        response = task_service_pb2.ListVersionsResponse.VersionResponse(version=version)
        if seconds is not None:
            response.deployed_at.CopyFrom(timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos))
        return response

    assert latest_version([row("b", 100), row("a", 200), row("c", 150)]) == "a"
    assert latest_version([row("b", 100, 5), row("a", 100, 7)]) == "a"  # nanoseconds count
    assert latest_version([row("a", 100), row("b", 100)]) == "b"  # a tie: the greater version
    assert latest_version([row("z", None), row("a", 1)]) == "a"  # no time ranks lowest
    assert latest_version([row("x", None)]) == "x"


def test_unknown_task_version_and_project_name_the_task_version_and_endpoint(tmp_path, flyte_server):
    project = copy_example(tmp_path)
    write_config(project / "config.yaml", flyte_server.endpoint, (tmp_path / "bundles").as_uri())
    deploy_version(project, project / "config.yaml", "v1")
    where = f"on the control plane at {flyte_server.endpoint} (flytesnacks/development)"

    task = flyte_deploy(project, "run", "visualization.nope")
    assert task.returncode == ExitCode.RUN_FAILED
    assert task.stderr.strip().splitlines() == [f"error: task visualization.nope is not deployed {where}"]

    version = flyte_deploy(project, "run", "visualization.report", "--version", "v9")
    assert version.returncode == ExitCode.RUN_FAILED
    assert version.stderr.strip().splitlines() == [
        f"error: task visualization.report version v9 is not deployed {where} (deployed versions: v1)"
    ]

    domain = flyte_deploy(project, "run", "visualization.report", "--version", "v1", "--domain", "production")
    assert domain.returncode == ExitCode.RUN_FAILED
    assert (
        f"version v1 is not deployed on the control plane at {flyte_server.endpoint} (flytesnacks/production)"
        " (deployed versions: none)" in domain.stderr
    )
    assert not (project / ".flyte-deploy").exists()


def test_an_unreachable_control_plane_is_a_control_plane_error(tmp_path):
    project = copy_example(tmp_path)
    port = free_port()
    write_config(project / "config.yaml", f"http://127.0.0.1:{port}", (tmp_path / "bundles").as_uri())
    result = flyte_deploy(project, "run", "visualization.report", "--input", f"raw={RAW}")
    assert result.returncode == ExitCode.CONTROL_PLANE_FAILED
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: cannot reach the control plane at http://127.0.0.1:{port}:")
    assert "Connection refused" in line
    assert not (project / ".flyte-deploy").exists()


def test_the_token_is_sent_and_never_printed(tmp_path, flyte_server_factory):
    server = flyte_server_factory(token=TOKEN)
    project = copy_example(tmp_path)
    write_config(project / "config.yaml", server.endpoint, (tmp_path / "bundles").as_uri())
    deploy_version(project, project / "config.yaml", "v1", FLYTE_DEPLOY_TOKEN=TOKEN)
    server.service.calls.clear()

    refused = run_report(project)
    assert refused.returncode == ExitCode.CONTROL_PLANE_FAILED
    assert f"the control plane at {server.endpoint} refused the credentials of ListVersions" in refused.stderr
    assert "set FLYTE_DEPLOY_TOKEN or token_command" in refused.stderr

    script = tmp_path / "print-token"
    script.write_text(f"#!/bin/sh\necho {TOKEN}\n")
    script.chmod(0o755)
    by_variable = run_report(project, env={"FLYTE_DEPLOY_TOKEN": TOKEN})
    by_command = run_report(project, "--version", "v1", env={"FLYTE_DEPLOY_TOKEN_COMMAND": str(script)})
    for ran in (by_variable, by_command):
        assert outputs(ran)["outputs"]["o0"].startswith("loss=")
    sent = [headers.get("authorization") for _, _, headers in server.service.calls]
    assert sent == [None, f"Bearer {TOKEN}", f"Bearer {TOKEN}", f"Bearer {TOKEN}"]
    for proc in (refused, by_variable, by_command):
        assert TOKEN not in proc.stdout + proc.stderr


def test_remote_mode_neither_reads_nor_writes_the_local_store(tmp_path, flyte_server):
    project = copy_example(tmp_path)
    config = write_config(tmp_path / "config.yaml", flyte_server.endpoint, (tmp_path / "bundles").as_uri())
    relabel_report(project, "local")
    local = flyte_deploy(project, "deploy", "workflow.py", "viz_env", "--version", "v1", "-q", "--backend", "local")
    assert local.returncode == 0, local.stderr
    relabel_report(project, "remote")
    deploy_version(project, config, "v1")
    store = project / ".flyte-deploy"
    before = {p: p.read_bytes() for p in store.rglob("*") if p.is_file()}
    assert any(p.name == "deployments.db" for p in before)

    remote = outputs(run_report(project, "--config", str(config)))
    assert remote["outputs"]["o0"].startswith("remote loss=")
    assert {p: p.read_bytes() for p in store.rglob("*") if p.is_file()} == before
    # a store no filesystem can open: reading it would fail, and the run does not care
    unopenable = outputs(run_report(project, "--config", str(config), env={"FLYTE_DEPLOY_STORE": "nosuchfs://x"}))
    assert unopenable == remote
    # the same project with --backend local runs the local store's version of the task (deployed to the
    # project of pyproject.toml, while config.yaml names another)
    assert outputs(run_report(project, "--config", str(config), "--backend", "local", "--project", "examples"))[
        "outputs"
    ]["o0"].startswith("local loss=")
    other = run_report(project, "--backend", "local", "--project", "elsewhere")
    assert other.returncode == ExitCode.RUN_FAILED
    assert other.stderr.strip() == (
        f"error: task visualization.report is not deployed to elsewhere/development in"
        f" {store / 'deployments.db'} (deployed: v1 in examples/development)"
    )
    store_given = run_report(project, "--config", str(config), "--store", store.as_uri())
    assert store_given.returncode == ExitCode.USAGE_ERROR
    assert "--store names the local backend's store" in store_given.stderr


def test_a_backend_run_cannot_read_is_a_usage_error(tmp_path):
    project = copy_example(tmp_path)
    result = flyte_deploy(project, "run", "visualization.report", "--backend", "carrier-pigeon")
    assert result.returncode == ExitCode.USAGE_ERROR
    assert result.stderr.strip() == (
        "error: backend 'carrier-pigeon' is unknown; available: local, remote (set in command line)"
    )


@pytest.mark.parametrize("s3_server", ["rclone"], indirect=True)
def test_run_fetches_a_bundle_from_s3(tmp_path, flyte_server, s3_server: S3Server):
    bucket = s3_server.make_bucket(f"b-{uuid.uuid4().hex[:12]}")
    project = copy_example(tmp_path)
    config = write_config(tmp_path / "config.yaml", flyte_server.endpoint, f"s3://{bucket}/bundles")
    storage = {"FLYTE_DEPLOY_STORAGE_OPTIONS": json.dumps(s3_server.options())}
    deploy_version(project, config, "v1", **storage)
    expected = expected_report(project)
    empty_dir(project)
    assert s3_server.filesystem().ls(f"{bucket}/bundles")

    ran = run_report(project, "--config", str(config), env=storage)
    assert outputs(ran)["outputs"] == {"o0": expected}
    assert s3_server.options()["secret"] not in ran.stdout + ran.stderr
    args = flyte_server.service.deployed()["visualization.report"].task_template.container.args
    assert any(arg.startswith(f"s3://{bucket}/bundles/") for arg in args)  # what the runtime fetched
