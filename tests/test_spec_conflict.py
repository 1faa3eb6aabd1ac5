"""``spec_conflict``: the one message for a version deployed with another spec (the local
store and the remote backend, tasks and apps)."""

from __future__ import annotations

from flyteidl2.task import task_definition_pb2

from flyte_deploy.diffing import spec_conflict


def test_it_names_four_differing_fields_and_counts_the_rest() -> None:
    deployed = task_definition_pb2.TaskSpec(short_name="a")
    planned = task_definition_pb2.TaskSpec(short_name="b")
    planned.task_template.container.image = "img:2"
    planned.task_template.container.args.append("--x")
    planned.task_template.metadata.retries.retries = 3
    planned.task_template.metadata.interruptible = True
    message = spec_conflict("task", "env.t", "v1", deployed, planned, " in p/d")
    assert message == (
        "task env.t version v1 is already deployed with a different spec in p/d (differs in"
        " short_name, task_template.container.args, task_template.container.image,"
        " task_template.metadata.interruptible and 1 more)"
    )
    assert spec_conflict("app", "web", "v1", deployed, task_definition_pb2.TaskSpec(short_name="c")) == (
        "app web version v1 is already deployed with a different spec (differs in short_name)"
    )
