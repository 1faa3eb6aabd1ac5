import flyte

import flyte_deploy as fd

ours = fd.TaskEnvironment(name="mixed-ours")
theirs = flyte.TaskEnvironment(name="mixed-flyte")


@ours.task
def plain(x: int) -> int:
    return x - 1


@theirs.task
def native(x: int) -> int:
    return x + 1
