"""A Flyte v2 project as written for `flyte deploy`, deployed with flyte-deploy."""

import flyte

env = flyte.TaskEnvironment(
    name="hello",
    resources=flyte.Resources(cpu=1, memory="500Mi"),
    description="Greets people",
)


@env.task
def greet(name: str, excited: bool = False) -> str:
    """Say hello.

    Args:
        name: who to greet
        excited: end with an exclamation mark
    """
    return f"Hello, {name}{'!' if excited else '.'}"


@env.task
async def shout(names: list[str]) -> list[str]:
    """Greet everyone, loudly."""
    return [f"HELLO, {name.upper()}!" for name in names]
