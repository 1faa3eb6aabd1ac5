"""Tasks written once and serialized by both flyte-deploy and the real Flyte SDK (through a
shim, see compare_with_flyte_sdk.py): every type family and the template settings both have."""

import dataclasses
import datetime
import enum

import pydantic

import flyte_deploy as fd

parity_env = fd.TaskEnvironment(
    name="parity",
    resources=fd.Resources(cpu=(1, 2), memory="1Gi", gpu="A100:1", disk="10Gi"),
    env_vars={"MODE": "test"},
    secrets=[fd.Secret(key="api-key", as_env_var="API_KEY"), fd.Secret(key="token", group="hub")],
    description="Parity checks",
)


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


@dataclasses.dataclass
class Point:
    x: int
    y: float = 0.0


class Model(pydantic.BaseModel):
    name: str
    tags: list[str] = []


@parity_env.task
def scalars(i: int, f: float, s: str, b: bool, by: bytes, dt: datetime.datetime, td: datetime.timedelta) -> None:
    """Scalars in, nothing out."""


@parity_env.task
def containers(items: list[int], table: dict[str, float], nested: list[dict[str, list[int]]]) -> tuple[int, str]:
    return 1, "a"


@parity_env.task
def unions(o: int | None, u: int | str, o2: int | None = None, e: Color = Color.RED) -> str | None:
    return None


@parity_env.task
def structured(p: Point, m: Model, points: list[Point]) -> Point:
    return p


@parity_env.task
def files(f: fd.File, d: fd.Dir) -> fd.File:
    return f


@parity_env.task(retries=3, timeout=60, cache="auto", interruptible=True)
async def defaults(a: int = 3, b: str = "x", c: list[int] = [1, 2], p: Point = Point(1, 2.0)) -> dict[str, int]:  # noqa: B006,B008
    return {}
