"""A flyte project deployed to a control plane (the TaskService of tests/fixtures/flyte_server.py,
configured by Flyte's own config.yaml shape): the SDK-serialized specs and their triggers are
sent with DeployTask, dependencies first."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.test_remote_deploy import deploy_calls, write_config

pytest.importorskip("flyte")
PROJECTS = Path(__file__).parent / "flyte_projects"


@pytest.fixture
def flyte_project(tmp_path, monkeypatch):
    root = tmp_path / "proj"
    root.mkdir()
    for name in ("triggers.py", "basics.py"):
        shutil.copy(PROJECTS / name, root / name)
    monkeypatch.chdir(root)
    monkeypatch.setenv("HOME", str(tmp_path))
    return root


def test_triggers_are_registered_with_their_task(flyte_project, flyte_server, tmp_path, invoke):
    write_config(flyte_project, flyte_server.endpoint, storage=tmp_path / "bundles")
    result = invoke("deploy", "--all", "triggers.py", "--output", "json", "-q")
    assert result.exit_code == 0, result.stderr
    assert result.json()["backend"] == "remote"
    requests = {req.task_id.name: req for m, req, _ in flyte_server.service.calls if m == "DeployTask"}
    assert [t.name for t in requests["triggers.report"].triggers] == ["nightly"]
    assert requests["triggers.report"].triggers[0].automation_spec.schedule.cron.expression == "0 2 * * *"
    assert [t.name for t in requests["triggers.poll"].triggers] == ["often"]
    assert requests["triggers.poll"].spec.task_template.container.args[0] == "a0"


def test_a_depends_on_chain_is_registered_dependencies_first_each_once(flyte_project, flyte_server, tmp_path, invoke):
    write_config(flyte_project, flyte_server.endpoint, storage=tmp_path / "bundles")
    result = invoke("deploy", "basics.py", "top_env", "base_env", "-q")
    assert result.exit_code == 0, result.stderr
    calls = deploy_calls(flyte_server)
    # each task once; environments one after another, dependencies first (the tasks of one
    # environment are registered concurrently, so their order among themselves is free)
    assert sorted(calls) == [
        "basics-base.add",
        "basics-base.multiply",
        "basics-middle.describe",
        "basics-middle.nothing",
        "basics-top.pipeline",
    ]
    environments = [call.split(".")[0] for call in calls]
    order = ["basics-base", "basics-middle", "basics-top"]
    assert environments == sorted(environments, key=order.index)
    versions = {req.task_id.version for m, req, _ in flyte_server.service.calls if m == "DeployTask"}
    assert len(versions) == 1
