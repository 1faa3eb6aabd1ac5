import flyte

from .envs import shared

main = flyte.TaskEnvironment(name="pkg-main", depends_on=[shared])


@shared.task
def base(x: int) -> int:
    return x + 1


@main.task
async def top(x: int) -> int:
    return x * 10
