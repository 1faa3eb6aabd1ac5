"""A reusable environment, plugin-free custom config and links."""

from datetime import timedelta

import flyte

env = flyte.TaskEnvironment(
    name="reuse",
    reusable=flyte.ReusePolicy(replicas=(1, 2), idle_ttl=timedelta(minutes=10), concurrency=4),
    resources=flyte.Resources(cpu=1, memory="2Gi"),
)


@env.task
async def work(x: int) -> int:
    return x * 2


@env.task
async def more(x: int, y: int = 1) -> int:
    return x + y
