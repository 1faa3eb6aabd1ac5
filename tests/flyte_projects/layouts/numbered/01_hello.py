import flyte

env = flyte.TaskEnvironment(name="numbered")


@env.task
def hello(who: str = "world") -> str:
    return f"hello {who}"
