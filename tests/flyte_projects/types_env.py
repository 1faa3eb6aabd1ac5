"""Parameters of every type family: files, directories, data frames, dataclasses, pydantic
models, enums, optionals, nested containers, datetimes."""

import dataclasses
import datetime
import enum

import flyte
import pydantic
from flyte.io import DataFrame, Dir, File

env = flyte.TaskEnvironment(name="types")


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


@env.task
def scalars(i: int, f: float, s: str, b: bool, dt: datetime.datetime, td: datetime.timedelta) -> str:
    return f"{i} {f} {s} {b} {dt.isoformat()} {td.total_seconds()}"


@env.task
def containers(items: list[int], table: dict[str, float], nested: list[dict[str, list[int]]]) -> tuple[int, str]:
    return len(items) + len(table) + len(nested), "ok"


@env.task
def choices(color: Color = Color.RED, maybe: int | None = None) -> str | None:
    return None if maybe is None else f"{color.value}{maybe}"


@env.task
def structured(point: Point, model: Model) -> Point:
    return Point(x=point.x + len(model.tags), y=point.y)


@env.task
async def files(f: File, d: Dir) -> File:
    return f


@env.task
async def frames(df: DataFrame) -> DataFrame:
    return df
