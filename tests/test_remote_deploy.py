"""Deploy the bundled example to a Flyte control plane over the network: a real HTTP server
on 127.0.0.1 serving flyteidl2's generated TaskService (tests/fixtures/flyte_server.py)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from connectrpc.code import Code

import flyte_deploy as fd
from flyte_deploy.errors import ExitCode
from flyte_deploy.storage import filesystem
from flyte_deploy.testing import AUTOLOAD_VARIABLES
from tests.conftest import EXAMPLE, REPO
from tests.fixtures.processes import free_port

TASKS = ("preprocessing.clean", "ml_training.train", "visualization.report")
TOKEN = "tok-7d1f0c2a-never-print-me"


@pytest.fixture
def example(tmp_path, monkeypatch):
    root = tmp_path / "ml_pipeline"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".flyte-deploy", "__pycache__"))
    monkeypatch.chdir(root)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("UCTL_CONFIG", "FLYTECTL_CONFIG", "FLYTE_ADMIN_ENDPOINT", "FLYTE_TASK_PROJECT", "FLYTE_TASK_DOMAIN"):
        monkeypatch.delenv(var, raising=False)
    return root


def write_config(root: Path, endpoint: str, *, storage: Path, extra: str = "") -> Path:
    """A Flyte-shaped config.yaml in the project root."""
    insecure = "true" if endpoint.startswith("http://") else "false"
    path = root / "config.yaml"
    path.write_text(
        f"admin:\n  endpoint: {endpoint}\n  insecure: {insecure}\n{extra}"
        f"task:\n  project: flytesnacks\n  domain: development\nstorage: {storage.as_uri()}\n"
    )
    return path


def deploy_calls(server) -> list[str]:
    return [request.task_id.name for method, request, _ in server.service.calls if method == "DeployTask"]


def assert_no_local_store(root: Path) -> None:
    assert not (root / ".flyte-deploy").exists(), "the remote backend wrote to the local store"


def test_deploy_sends_each_serialized_spec_field_by_field(example, flyte_server, tmp_path):
    bundles = tmp_path / "bundles"
    write_config(example, flyte_server.endpoint, storage=bundles)
    result = fd.deploy(_example_viz_env(), version="v1", root_dir=example)  # the API; config.yaml says remote
    assert result.backend == "remote"
    assert [(r.task, r.status) for r in result.registrations] == [(t, "created") for t in TASKS]
    assert deploy_calls(flyte_server) == list(TASKS)  # dependencies first

    requests = {req.task_id.name: req for m, req, _ in flyte_server.service.calls if m == "DeployTask"}
    assert sorted(requests) == sorted(t.name for t in result.tasks)
    for expected in result.tasks:  # exactly what serialize_task (+ attach_source_link) produced
        received = requests[expected.name]
        template_id = expected.spec.task_template.id
        assert (received.task_id.project, received.task_id.domain, received.task_id.name, received.task_id.version) == (
            template_id.project,
            template_id.domain,
            template_id.name,
            "v1",
        )
        assert (template_id.project, template_id.domain) == ("flytesnacks", "development")
        assert list(received.triggers) == []
        fields = expected.spec.ListFields()
        assert {f.name for f, _ in fields} >= {"task_template", "short_name", "environment"}
        assert {f.name for f, _ in received.spec.ListFields()} == {f.name for f, _ in fields}
        for field, value in fields:
            assert getattr(received.spec, field.name) == value, f"{expected.name}: {field.name} differs"
        for field, value in expected.spec.task_template.ListFields():
            assert getattr(received.spec.task_template, field.name) == value, f"{expected.name}: {field.name}"
        assert received.spec.documentation.source_code.link == expected.source_link
        assert received.spec == expected.spec
    # the bundle went to the configured storage, and the tasks point at it
    assert result.bundle_uri and result.bundle_uri.startswith(bundles.as_uri())
    fs, path = filesystem(result.bundle_uri)
    assert fs.exists(path)
    assert result.bundle_uri in requests["ml_training.train"].spec.task_template.container.args
    assert_no_local_store(example)


def _example_viz_env():
    sys.path.insert(0, str(Path.cwd()))
    import workflow  # noqa: F401  (registers the tasks on the environments)
    from envs import viz_env

    return viz_env


def test_redeploying_the_same_version_changes_nothing(example, flyte_server, tmp_path, invoke):
    write_config(example, flyte_server.endpoint, storage=tmp_path / "bundles")
    first = invoke("deploy", "workflow.py", "viz_env", "--version", "v1", "-q")
    assert first.exit_code == 0, first.stderr
    stored = dict(flyte_server.service.tasks)
    again = invoke("deploy", "workflow.py", "viz_env", "--version", "v1", "--output", "json", "-q")
    assert again.exit_code == 0, again.stderr
    assert [r["status"] for r in again.json()["registrations"]] == ["unchanged"] * 3
    assert deploy_calls(flyte_server) == list(TASKS)  # nothing sent again
    assert flyte_server.service.tasks == stored


def test_the_same_version_with_a_different_spec_is_refused_before_anything_is_sent(
    example, flyte_server, tmp_path, invoke
):
    write_config(example, flyte_server.endpoint, storage=tmp_path / "bundles")
    assert invoke("deploy", "workflow.py", "viz_env", "--version", "v1", "-q").exit_code == 0
    stored = dict(flyte_server.service.tasks)
    changed = invoke(
        "deploy", "workflow.py", "viz_env", "--version", "v1", "-q", "--image", "visualization=ghcr.io/acme/viz:2"
    )
    assert changed.exit_code == ExitCode.REGISTRATION_FAILED
    line = changed.stderr.strip().splitlines()[-1]
    assert line.startswith(
        "error: task visualization.report version v1 is already deployed with a different spec"
        " (differs in task_template.container.image)"
    )
    assert "versions are immutable: pass a new --version" in line
    assert "preprocessing.clean" in line.split("not registered:")[1]  # refused before registering anything
    assert deploy_calls(flyte_server) == list(TASKS)
    assert flyte_server.service.tasks == stored
    assert (
        invoke(
            "deploy", "workflow.py", "viz_env", "--version", "v2", "-q", "--image", "visualization=ghcr.io/acme/viz:2"
        ).exit_code
        == 0
    )


def test_a_failed_registration_names_what_was_registered_and_a_rerun_completes(
    example, flyte_server_factory, tmp_path, invoke
):
    server = flyte_server_factory(fail_deploy_at=2)
    write_config(example, server.endpoint, storage=tmp_path / "bundles")
    failed = invoke("deploy", "workflow.py", "viz_env", "--version", "v1", "-q")
    assert failed.exit_code == ExitCode.REGISTRATION_FAILED
    line = failed.stderr.strip().splitlines()[-1]
    assert "registering ml_training.train version v1 failed" in line
    assert "internal: injected failure of DeployTask call 2" in line
    assert "registered: preprocessing.clean; not registered: ml_training.train, visualization.report" in line
    assert line.endswith("run the same command again to register the rest")
    assert sorted(server.service.deployed()) == ["preprocessing.clean"]

    rerun = invoke("deploy", "workflow.py", "viz_env", "--version", "v1", "--output", "json", "-q")
    assert rerun.exit_code == 0, rerun.stderr
    assert [(r["task"], r["status"]) for r in rerun.json()["registrations"]] == [
        ("preprocessing.clean", "unchanged"),
        ("ml_training.train", "created"),
        ("visualization.report", "created"),
    ]
    assert sorted(server.service.deployed()) == sorted(TASKS)
    assert_no_local_store(example)


def test_a_transient_failure_is_retried(example, flyte_server_factory, tmp_path, invoke):
    server = flyte_server_factory(fail_deploy_at=1, fail_code=Code.UNAVAILABLE)
    write_config(example, server.endpoint, storage=tmp_path / "bundles")
    result = invoke("deploy", "workflow.py", "viz_env", "--version", "v1", "-q")
    assert result.exit_code == 0, result.stderr
    assert deploy_calls(server) == ["preprocessing.clean", *TASKS]  # the first one twice
    assert sorted(server.service.deployed()) == sorted(TASKS)


def test_a_server_that_is_down_is_a_clear_error_and_nothing_is_registered_locally(example, tmp_path, invoke):
    port = free_port()
    write_config(
        example, f"http://127.0.0.1:{port}", storage=tmp_path / "bundles", extra="flyte-deploy:\n  retries: 1\n"
    )
    result = invoke("deploy", "workflow.py", "viz_env", "--version", "v1", "-q")
    assert result.exit_code == ExitCode.REGISTRATION_FAILED
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(
        f"error: looking up the tasks failed: cannot reach the control plane at"
        f" http://127.0.0.1:{port} (after 2 attempts):"
    )
    assert "Connection refused" in line
    assert "registered: none; not registered: preprocessing.clean, ml_training.train, visualization.report" in line
    assert_no_local_store(example)


def test_remote_deploy_needs_storage_and_checks_it_before_building(example, flyte_server, invoke):
    (example / "config.yaml").write_text(f"admin:\n  endpoint: {flyte_server.endpoint}\n")
    result = invoke("deploy", "workflow.py", "viz_env", "-q")
    assert result.exit_code == ExitCode.USAGE_ERROR
    assert "the remote backend needs `storage`" in result.stderr
    assert flyte_server.service.calls == []
    assert_no_local_store(example)


def test_tls_with_a_custom_ca(example, flyte_server_factory, server_certificates, tmp_path, invoke):
    server = flyte_server_factory(certificates=server_certificates)
    assert server.endpoint.startswith("https://")
    write_config(example, f"dns:///127.0.0.1:{server.port}", storage=tmp_path / "bundles")
    untrusted = invoke("deploy", "workflow.py", "viz_env", "--version", "v1", "-q")
    assert untrusted.exit_code == ExitCode.REGISTRATION_FAILED
    assert f"TLS with the control plane at https://127.0.0.1:{server.port} failed" in untrusted.stderr
    assert "set ca_cert (admin.caCertFilePath)" in untrusted.stderr
    assert server.service.calls == []

    write_config(
        example,
        f"dns:///127.0.0.1:{server.port}",
        storage=tmp_path / "bundles",
        extra=f"  caCertFilePath: {server_certificates.ca_cert}\n",
    )
    trusted = invoke("deploy", "workflow.py", "viz_env", "--version", "v1", "-q")
    assert trusted.exit_code == 0, trusted.stderr
    assert sorted(server.service.deployed()) == sorted(TASKS)


def test_bearer_token_is_sent_and_never_printed(example, flyte_server_factory, tmp_path, invoke, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    server = flyte_server_factory(token=TOKEN)
    write_config(example, server.endpoint, storage=tmp_path / "bundles")
    refused = invoke("deploy", "workflow.py", "viz_env", "--version", "v1", "-q")
    assert refused.exit_code == ExitCode.REGISTRATION_FAILED
    assert "refused the credentials of GetTaskDetails" in refused.stderr
    assert "set FLYTE_DEPLOY_TOKEN or token_command" in refused.stderr

    monkeypatch.setenv("FLYTE_DEPLOY_TOKEN", TOKEN)
    ok = invoke("deploy", "workflow.py", "viz_env", "--version", "v1")
    assert ok.exit_code == 0, ok.stderr
    sent = [headers.get("authorization") for m, _, headers in server.service.calls if m == "DeployTask"]
    assert sent == [f"Bearer {TOKEN}"] * 3
    listed = invoke("ls", "--remote", "--output", "json")
    assert listed.exit_code == 0, listed.stderr
    for output in (refused.stdout, refused.stderr, ok.stdout, ok.stderr, listed.stdout, listed.stderr, caplog.text):
        assert TOKEN not in output


def test_token_command_in_a_subprocess_deploy(example, flyte_server_factory, tmp_path):
    server = flyte_server_factory(token=TOKEN)
    script = tmp_path / "print-token"
    script.write_text(f"#!/bin/sh\necho {TOKEN}\n")
    script.chmod(0o755)
    write_config(example, server.endpoint, storage=tmp_path / "bundles", extra=f"  command: [{script}]\n")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("FLYTE_DEPLOY_") or k in AUTOLOAD_VARIABLES or k == "FLYTE_DEPLOY_CACHE_DIR"
    }  # the test's own signature cache
    env.update(PYTHONPATH=str(REPO / "src"), COLUMNS="200", NO_COLOR="1")
    proc = subprocess.run(
        [sys.executable, "-m", "flyte_deploy", "deploy", "workflow.py", "viz_env", "--version", "v1"],
        cwd=example,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Deployed version v1 (remote backend)" in proc.stdout
    assert TOKEN not in proc.stdout + proc.stderr
    assert sorted(server.service.deployed()) == sorted(TASKS)
    assert_no_local_store(example)


def test_ls_remote_lists_tasks_and_their_versions(example, flyte_server, tmp_path, invoke):
    write_config(example, flyte_server.endpoint, storage=tmp_path / "bundles")
    empty = invoke("ls", "--remote")
    assert empty.exit_code == 0 and "nothing deployed on" in empty.stdout
    for version in ("v1", "v2"):
        assert invoke("deploy", "workflow.py", "viz_env", "--version", version, "-q").exit_code == 0
    listed = invoke("ls", "--remote", "--output", "json")
    assert listed.exit_code == 0, listed.stderr
    records = listed.json()
    assert [r["task"] for r in records] == sorted(TASKS)
    for record in records:
        assert record["latest"] == "v2"
        assert [v["version"] for v in record["versions"]] == ["v1", "v2"]
        assert all(v["deployed_at"] for v in record["versions"])
        assert (record["project"], record["domain"]) == ("flytesnacks", "development")
    assert records[0]["environment"] == "ml_training"
    table = invoke("ls", "--remote")
    assert "visualization.report" in table.stdout and "v2" in table.stdout
    other = invoke("ls", "--remote", "--domain", "production", "--output", "json")
    assert other.json() == []
    # the project configures an endpoint: a plain ls lists the backend deploy used
    assert invoke("ls", "--output", "json").json() == records
    local = invoke("ls", "--backend", "local")
    assert local.exit_code == 0 and "nothing deployed in" in local.stdout
    conflicting = invoke("ls", "--remote", "--backend", "local")
    assert conflicting.exit_code == ExitCode.USAGE_ERROR and "cannot be combined" in conflicting.stderr


def test_ls_remote_with_the_server_down_is_a_control_plane_error(example, tmp_path, invoke):
    write_config(
        example, f"http://127.0.0.1:{free_port()}", storage=tmp_path / "bundles", extra="flyte-deploy:\n  retries: 0\n"
    )
    result = invoke("ls", "--remote")
    assert result.exit_code == ExitCode.CONTROL_PLANE_FAILED
    assert "cannot reach the control plane at" in result.stderr


def test_a_dry_run_checks_the_settings_but_contacts_nothing(example, flyte_server, tmp_path, invoke):
    write_config(example, flyte_server.endpoint, storage=tmp_path / "bundles")
    result = invoke("deploy", "workflow.py", "viz_env", "--dry-run", "--output", "json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["backend"] == "remote" and result.json()["registrations"] == []
    assert flyte_server.service.calls == []
    assert not (tmp_path / "bundles").exists()
    assert_no_local_store(example)


def test_a_version_deployed_between_look_up_and_registration_is_compared_again(flyte_server, tmp_path):
    """``DeployTask`` answering ALREADY_EXISTS: the same spec is unchanged, another is refused
    with the registered and unregistered tasks named."""
    from flyteidl2.task import task_definition_pb2

    from flyte_deploy.builtin.remote_backend import RemoteDeploy, register
    from flyte_deploy.errors import RegistrationError
    from flyte_deploy.remote import TaskServiceConnection
    from flyte_deploy.types import SerializedTask
    from tests.fixtures.flyte_server import settings_for

    def task(name: str, image: str) -> SerializedTask:
        spec = task_definition_pb2.TaskSpec(short_name=name.split(".")[1])
        spec.task_template.id.project, spec.task_template.id.domain = "p", "d"
        spec.task_template.id.name, spec.task_template.id.version = name, "v1"
        spec.task_template.container.image = image
        return SerializedTask(environment=name.split(".")[0], name=name, spec=spec)

    settings = settings_for(flyte_server.endpoint, concurrency=1)  # in task order
    with TaskServiceConnection(settings, None) as connection:
        first = [task("env.a", "img:1"), task("env.b", "img:1")]
        assert [r.status for r in register(RemoteDeploy(connection), first)] == ["created", "created"]
        # a state that looked up nothing, as if both were deployed after the look-up
        assert [r.status for r in register(RemoteDeploy(connection), first)] == ["unchanged", "unchanged"]
        changed = [task("env.a", "img:1"), task("env.b", "img:2"), task("env.c", "img:1")]
        with pytest.raises(RegistrationError) as info:
            register(RemoteDeploy(connection), changed)
    text = str(info.value)
    assert (
        "task env.b version v1 is already deployed with a different spec (differs in"
        " task_template.container.image)" in text
    )
    assert text.endswith("registered: env.a; not registered: env.b, env.c")
    assert sorted(flyte_server.service.deployed()) == ["env.a", "env.b"]
