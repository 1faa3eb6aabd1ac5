"""SDK objects: TaskEnvironment, the task decorator, Resources, Secret, Cache."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

import flyte_deploy as fd


def test_sync_and_async_tasks_run_locally_when_called():
    env = fd.TaskEnvironment(name="local")

    @env.task
    def add(a: int, b: int = 2) -> int:
        return a + b

    @env.task(retries=3, timeout=60)
    async def twice(a: int) -> int:
        return add(a, a)

    assert add(1) == 3
    assert asyncio.run(twice(5)) == 10
    assert isinstance(add, fd.Task) and add.name == "local.add" and not add.is_async
    assert twice.is_async and twice.retries == 3 and twice.timeout == timedelta(seconds=60)
    assert list(env.tasks) == ["add", "twice"]
    assert add.__doc__ is None and add.__name__ == "add"


def test_task_settings_merge_environment_and_task_overrides():
    env = fd.TaskEnvironment(
        name="e", resources=fd.Resources(cpu=1, memory="1Gi"), env_vars={"A": "1", "B": "x"}, secrets=["token"]
    )

    @env.task(resources=fd.Resources(memory=("2Gi", "4Gi")), env_vars={"B": "y"}, secrets=[fd.Secret("db")])
    def work() -> None:
        return None

    assert work.effective_resources == fd.Resources(cpu=1, memory=("2Gi", "4Gi"))
    assert work.effective_env_vars == {"A": "1", "B": "y"}
    assert [s.key for s in work.effective_secrets] == ["token", "db"]


@pytest.mark.parametrize("name", ["", "Upper", "has space", "-lead", "trail-", 42])
def test_invalid_environment_names_are_rejected(name):
    with pytest.raises(fd.UsageError, match="TaskEnvironment name"):
        fd.TaskEnvironment(name=name)


def test_bad_arguments_name_the_environment_or_task():
    with pytest.raises(fd.UsageError, match="'e': depends_on holds 'x'"):
        fd.TaskEnvironment(name="e", depends_on=["x"])
    env = fd.TaskEnvironment(name="e")
    with pytest.raises(fd.UsageError, match="task e._f: retries must be a non-negative int"):
        env.task(retries=-1)(_f)
    env.task(_f)
    with pytest.raises(fd.UsageError, match="already has a task named '_f'"):
        env.task(_f)
    with pytest.raises(fd.UsageError, match="Cache behavior"):
        fd.Cache("sometimes")


def _f():
    return None


def test_environment_records_where_it_was_defined():
    env = fd.TaskEnvironment(name="here")
    line = test_environment_records_where_it_was_defined.__code__.co_firstlineno + 1
    assert env.location.endswith(f"test_sdk.py:{line}")


def test_default_image_and_string_images():
    assert fd.TaskEnvironment(name="a").image == fd.Image.default()
    env = fd.TaskEnvironment(name="b", image="ghcr.io/acme/base:1")
    assert env.image.prebuilt and env.image.uri == "ghcr.io/acme/base:1"
