"""A pod template object (labels, annotations, a grace period) and a named one on a task."""

import flyte

env = flyte.TaskEnvironment(
    name="pods",
    pod_template=flyte.PodTemplate(labels={"team": "ml"}, annotations={"note": "x"}).with_termination_grace_period(30),
    env_vars={"STAGE": "pods"},
)


@env.task
def inside(x: int) -> int:
    return x


@env.task(pod_template="named-template")
def named(x: int) -> int:
    return x
