"""`flyte-deploy history ENV.TASK`: every deployed version of a task, first deployed first, when,
from which commit (the source link) and with which bundle, on the embedded store and on a
control plane on 127.0.0.1. An app's history (a name without a dot): tests/test_diff_apps.py."""

from __future__ import annotations

import types
from datetime import UTC, datetime

import pytest

import flyte_deploy as fd
from flyte_deploy.errors import ExitCode
from tests.diffing_helpers import APP, make_target

REMOTE = "https://github.com/acme/svc.git"


@pytest.fixture(params=("local", "remote"))
def target(request, deploy_project, tmp_path):
    deploy_project({"app.py": APP})
    return make_target(request, deploy_project, request.param, tmp_path).settings()


def three_deploys(target):
    """Deploy three commits, each changing the bundle; returns (commit, deploy JSON) of each."""
    project = target.project
    deploys = []
    for n in range(3):
        if n:
            project.write({"app.py": APP + f"\n# revision {n}\n"})
            project.git("commit", "-qam", f"revision {n}")
        else:
            project.git_init(remote=REMOTE)
        deploys.append((project.git("rev-parse", "HEAD"), target.deploy().json))
    return deploys


def test_history_after_three_deploys(target):
    started = datetime.now(UTC)
    deploys = three_deploys(target)
    run = target.history("svc.ping").assert_ok()
    assert [r["version"] for r in run.json] == [d["version"] for _, d in deploys]
    assert [r["bundle_digest"] for r in run.json] == [d["bundle"]["digest"] for _, d in deploys]
    assert len({r["bundle_digest"] for r in run.json}) == 3
    for (commit, _), record in zip(deploys, run.json, strict=True):
        assert record["task"] == "svc.ping" and record["environment"] == "svc"
        assert record["source_link"].startswith(f"https://github.com/acme/svc/blob/{commit}/app.py#L")
    stamps = [datetime.strptime(r["deployed_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC) for r in run.json]
    assert stamps == sorted(stamps) and started <= stamps[0] <= stamps[-1] <= datetime.now(UTC)

    table = target.history("svc.ping", "--output", "table").assert_ok()
    assert f"History of svc.ping on backend {target.backend} (flytesnacks/development)" in table.stdout
    for _, deployed in deploys:
        assert f"sha256 {deployed['bundle']['digest'][:12]}" in table.stdout


def test_history_through_the_api(target):
    deploys = three_deploys(target)
    versions = fd.history("svc.pong", root_dir=target.project.root)
    assert [v.version for v in versions] == [d["version"] for _, d in deploys]
    assert all(v.spec.task_template.id.name == "svc.pong" for v in versions)
    assert all(v.deployed_at is not None and v.deployed_at.tzinfo is not None for v in versions)


def test_a_redeploy_of_the_same_version_adds_no_entry(target):
    target.deploy("--version", "v1")
    target.deploy("--version", "v1")
    target.settings(retries=2)
    target.deploy("--version", "v2")
    assert [r["version"] for r in target.history("svc.ping").assert_ok().json] == ["v1", "v2"]
    assert [(r["kind"], r["version"]) for r in target.history("svc.pong").assert_ok().json] == [
        ("task", "v1"),
        ("task", "v2"),
    ]


def test_history_is_per_domain(target):
    target.deploy("--version", "v1")
    target.deploy("--version", "v2", "--domain", "production")
    assert [r["version"] for r in target.history("svc.ping", "--domain", "production").assert_ok().json] == ["v2"]


def test_a_task_never_deployed_or_badly_named_is_a_usage_error(target):
    target.deploy()
    run = target.history("svc.nope").assert_exit(ExitCode.USAGE_ERROR)
    assert run.stderr.strip() == (
        f"error: task svc.nope was never deployed to flytesnacks/development on backend {target.backend!r}"
    )
    run = target.history("ping").assert_exit(ExitCode.USAGE_ERROR)  # a name without a dot is an app's
    assert "app ping was never deployed" in run.stderr and "(a task is named ENV.TASK)" in run.stderr
    with pytest.raises(fd.UsageError, match="name the task as ENV.TASK, got 'ping'"):
        fd.history("ping", root_dir=target.project.root)


def test_a_backend_without_history_is_a_usage_error(deploy_project, register_plugin):
    module = types.ModuleType("memo")
    module.register_backends = fd.hookimpl(lambda: [fd.Backend("memo", lambda *a: [])])
    register_plugin(module, "memo")
    run = deploy_project.run_cli("history", "svc.ping", "--backend", "memo", "--root-dir", str(deploy_project.root))
    assert run.exit_code == ExitCode.USAGE_ERROR
    assert "backend 'memo' (command line) keeps no history it can show" in run.stderr


def test_history_and_diff_in_a_subprocess(deploy_project):
    deploy_project({"app.py": APP})
    target = make_target(None, deploy_project, "local", None).settings()
    target.deploy("--version", "v1")
    run = deploy_project.run_subprocess("history", "svc.ping", "--output", "json")
    assert run.exit_code == 0, run.stderr
    assert [r["version"] for r in run.json] == ["v1"]
    assert deploy_project.run_subprocess("diff", "app.py", "env", "--version", "v1", "-q").exit_code == 0
    target.settings(retries=1)
    run = deploy_project.run_subprocess("diff", "app.py", "env", "-q")
    assert run.exit_code == ExitCode.CHANGES_PENDING == 20, run.stderr
    assert "retries: 0 -> 1" in run.stdout
