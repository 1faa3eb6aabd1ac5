import flyte

from mypkg.helpers import triple

env = flyte.TaskEnvironment(name="srclayout")


@env.task
def run(x: int) -> int:
    return triple(x)
