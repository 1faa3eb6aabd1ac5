"""Sync and async tasks, defaults, docstrings, a depends_on chain, the template settings."""

from datetime import timedelta

import flyte

base_env = flyte.TaskEnvironment(
    name="basics-base",
    resources=flyte.Resources(cpu=(1, 2), memory="1Gi", disk="2Gi"),
    env_vars={"MODE": "test"},
    secrets=[flyte.Secret(key="api-key", as_env_var="API_KEY"), flyte.Secret(key="token", group="hub")],
    description="Shared helpers",
)
middle_env = flyte.TaskEnvironment(name="basics-middle", depends_on=[base_env], cache="auto", interruptible=True)
top_env = flyte.TaskEnvironment("basics-top", depends_on=[middle_env], pod_template="gpu-pool")


@base_env.task
def add(x: int, y: int = 2) -> int:
    """Add two numbers.

    Args:
        x: the first
        y: the second

    Returns:
        the sum
    """
    return x + y


@base_env.task(retries=3, timeout=timedelta(minutes=5), short_name="mul")
async def multiply(x: float, factor: float = 1.5) -> float:
    return x * factor


@middle_env.task(cache=flyte.Cache(behavior="override", version_override="v7", serialize=True))
def describe(values: list[int], labels: dict[str, str] | None = None) -> tuple[int, str]:
    """Count values and describe them."""
    return len(values), ",".join(sorted((labels or {}).values()))


@middle_env.task(report=True)
async def nothing() -> None:
    return None


@top_env.task(interruptible=False, retries=flyte.RetryStrategy(count=2))
async def pipeline(n: int = 3) -> int:
    total = 0
    for i in range(n):
        total = await add.aio(total, i)
    return total
