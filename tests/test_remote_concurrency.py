"""Registration at scale: up to ``remote.concurrency`` DeployTask calls in flight, against
the real TaskService fixture, with an exact partial-failure report under concurrency."""

from __future__ import annotations

import pytest

from flyte_deploy.builtin.remote_backend import RemoteDeploy, look_up, register
from flyte_deploy.config import Config
from flyte_deploy.errors import ExitCode, RegistrationError, UsageError
from flyte_deploy.remote import RemoteSettings, TaskServiceConnection
from flyte_deploy.types import SerializedTask
from tests.fixtures.flyte_server import settings_for


def make_tasks(count: int, version: str = "v1") -> list[SerializedTask]:
    from flyteidl2.task import task_definition_pb2

    tasks = []
    for i in range(count):
        name = f"env.t{i:03d}"
        spec = task_definition_pb2.TaskSpec(short_name=f"t{i:03d}")
        tid = spec.task_template.id
        tid.project, tid.domain, tid.name, tid.version = "p", "d", name, version
        spec.task_template.container.image = "img:1"
        tasks.append(SerializedTask(environment="env", name=name, spec=spec))
    return tasks


def connect(server, concurrency: int) -> TaskServiceConnection:
    return TaskServiceConnection(settings_for(server.endpoint, timeout=10, concurrency=concurrency), None)


def test_registrations_run_concurrently_within_the_bound(flyte_server_factory):
    server = flyte_server_factory(deploy_delay=0.05)
    tasks = make_tasks(40)
    with connect(server, 8) as connection:
        state = RemoteDeploy(connection, look_up(connection, tasks))
        registrations = register(state, tasks)
    assert [r.task for r in registrations] == [t.name for t in tasks]
    assert {r.status for r in registrations} == {"created"}
    assert sorted(server.service.deployed()) == [t.name for t in tasks]
    assert 1 < server.service.max_in_flight <= 8


def test_concurrency_one_registers_one_after_another(flyte_server_factory):
    server = flyte_server_factory(deploy_delay=0.01)
    with connect(server, 1) as connection:
        register(RemoteDeploy(connection), make_tasks(5))
    assert server.service.max_in_flight == 1


@pytest.mark.parametrize("fail_at", [1, 7, 30])
def test_a_failure_under_concurrency_names_exactly_what_was_registered(flyte_server_factory, fail_at):
    server = flyte_server_factory(fail_deploy_at=fail_at, deploy_delay=0.01)
    tasks = make_tasks(30)
    with connect(server, 8) as connection, pytest.raises(RegistrationError) as info:
        register(RemoteDeploy(connection, look_up(connection, tasks)), tasks)
    error = info.value
    names = [t.name for t in tasks]
    on_server = set(server.service.deployed())
    assert set(error.registered) == on_server, "registered is exactly what the control plane holds"
    assert set(error.not_registered) == set(names) - on_server
    assert list(error.registered) == [n for n in names if n in on_server]  # both in task order
    assert list(error.not_registered) == [n for n in names if n not in on_server]
    assert len(on_server) == server.service.deploy_attempts - 1  # every attempt but the failed one stored
    assert f"injected failure of DeployTask call {fail_at}" in error.message
    assert error.exit_code == ExitCode.REGISTRATION_FAILED

    # the rerun registers the rest and reports the others unchanged
    with connect(server, 8) as connection:
        registrations = register(RemoteDeploy(connection, look_up(connection, tasks)), tasks)
    assert {r.task for r in registrations if r.status == "unchanged"} == on_server
    assert {r.task for r in registrations if r.status == "created"} == set(names) - on_server
    assert sorted(server.service.deployed()) == names


def test_the_look_up_of_every_task_is_concurrent_and_complete(flyte_server_factory):
    server = flyte_server_factory()
    tasks = make_tasks(25)
    with connect(server, 4) as connection:
        register(RemoteDeploy(connection), tasks[:10])
        status = look_up(connection, tasks)
    assert status == {t.name: "unchanged" if i < 10 else "new" for i, t in enumerate(tasks)}


@pytest.mark.parametrize("value", ["0", "-1", "many", "1.5", "1000"])
def test_a_bad_concurrency_is_a_usage_error_naming_where_it_came_from(tmp_path, value):
    config = Config.load(
        tmp_path, options={"endpoint": "http://127.0.0.1:1"}, environ={"FLYTE_DEPLOY_REMOTE_CONCURRENCY": value}
    )
    with pytest.raises(
        UsageError, match="remote.concurrency must be a whole number from 1 to 256.*FLYTE_DEPLOY_REMOTE_CONCURRENCY"
    ):
        RemoteSettings.from_config(config)


def test_concurrency_is_read_from_pyproject(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.flyte-deploy]\nendpoint = "http://127.0.0.1:1"\n[tool.flyte-deploy.remote]\nconcurrency = 4\n'
    )
    assert RemoteSettings.from_config(Config.load(tmp_path, environ={})).concurrency == 4
    assert (
        RemoteSettings.from_config(Config.load(tmp_path / "..", options={"endpoint": "h:1"}, environ={})).concurrency
        == 16
    )
