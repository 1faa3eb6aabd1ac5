import flyte
from helpers import double

env = flyte.TaskEnvironment(name="siblings")


@env.task
def twice(x: int) -> int:
    return double(x)
