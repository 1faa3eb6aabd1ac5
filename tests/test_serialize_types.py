"""Type hints to flyteidl2 types and values to literals, one test per type family, plus the
errors for types that have no Flyte form (naming task, parameter and type)."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Optional, Union

import pydantic
import pytest
from flyteidl2.core import types_pb2
from google.protobuf import json_format

import flyte_deploy as fd
from flyte_deploy.builtin.serialize import serialize
from flyte_deploy.errors import ExitCode, SerializationError
from flyte_deploy.image import Image
from flyte_deploy.interface import (
    UnsupportedType,
    from_literal,
    literal_from_json,
    literal_from_text,
    literal_to_json,
    literal_type,
    to_literal,
)
from flyte_deploy.types import DeployPlan, DeployRequest

SRC = Path(fd.__file__).resolve().parent.parent


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


@dataclasses.dataclass
class Point:
    x: int
    y: float = 0.0


@dataclasses.dataclass
class Shape:
    name: str
    points: list[Point]
    color: Color = Color.RED
    tags: dict[str, int | None] = dataclasses.field(default_factory=dict)


class Model(pydantic.BaseModel):
    name: str
    tags: list[str] = []
    origin: Point | None = None


def lt(data: dict[str, Any]) -> types_pb2.LiteralType:
    return json_format.ParseDict(data, types_pb2.LiteralType())


def roundtrip(value: Any, tp: Any) -> None:
    """The value survives Python -> literal -> Python, and literal -> JSON -> literal (the
    path ``flyte-deploy run`` takes, typed by the LiteralType alone)."""
    literal = to_literal(value, tp)
    assert from_literal(literal, tp) == value
    again = literal_from_json(literal_to_json(literal), literal_type(tp))
    assert from_literal(again, tp) == value


SIMPLE = [
    (int, "INTEGER", 42),
    (float, "FLOAT", 2.5),
    (str, "STRING", "héllo"),
    (bool, "BOOLEAN", True),
    (bytes, "BINARY", b"raw bytes"),
    (type(None), "NONE", None),
    (datetime.datetime, "DATETIME", datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.UTC)),
    (datetime.timedelta, "DURATION", datetime.timedelta(minutes=90, microseconds=5)),
]


@pytest.mark.parametrize("tp,simple,value", SIMPLE, ids=[s[1].lower() for s in SIMPLE])
def test_simple_types(tp: Any, simple: str, value: Any) -> None:
    assert literal_type(tp) == lt({"simple": simple})
    roundtrip(value, tp)


def test_none_annotation_is_the_none_type() -> None:
    assert literal_type(None) == lt({"simple": "NONE"})


def test_bool_is_not_an_int() -> None:
    with pytest.raises(UnsupportedType, match="is not an int"):
        to_literal(True, int)


def test_enum_by_member_name() -> None:
    assert literal_type(Color) == lt({"enumType": {"values": ["RED", "GREEN"]}})
    assert to_literal(Color.GREEN, Color).scalar.primitive.string_value == "GREEN"
    roundtrip(Color.GREEN, Color)
    with pytest.raises(ValueError, match="expected enum"):
        literal_from_text("BLUE", literal_type(Color))


def test_list_of_int() -> None:
    assert literal_type(list[int]) == lt({"collectionType": {"simple": "INTEGER"}})
    roundtrip([1, 2, 3], list[int])
    roundtrip([], list[int])


def test_dict_of_str_to_float() -> None:
    assert literal_type(dict[str, float]) == lt({"mapValueType": {"simple": "FLOAT"}})
    roundtrip({"loss": 0.5, "acc": 1.0}, dict[str, float])


def test_optional_is_a_tagged_union_with_none() -> None:
    expected = lt(
        {
            "unionType": {
                "variants": [
                    {"simple": "INTEGER", "structure": {"tag": "int"}},
                    {"simple": "NONE", "structure": {"tag": "none"}},
                ]
            }
        }
    )
    assert literal_type(Optional[int]) == expected
    assert literal_type(int | None) == expected
    roundtrip(None, Optional[int])
    roundtrip(7, Optional[int])


def test_union_picks_the_matching_variant() -> None:
    assert [v.structure.tag for v in literal_type(Union[int, str]).union_type.variants] == ["int", "str"]
    assert to_literal("seven", Union[int, str]).scalar.union.type.structure.tag == "str"
    roundtrip("seven", Union[int, str])
    roundtrip(7, Union[int, str])
    # the command line reads a union as JSON first, and as plain text when it is not JSON
    assert literal_to_json(literal_from_text("7", literal_type(Union[int, str]))) == 7
    assert literal_to_json(literal_from_text("seven", literal_type(Union[int, str]))) == "seven"
    assert literal_to_json(literal_from_text("123", literal_type(Optional[str]))) == "123"
    assert literal_to_json(literal_from_text("null", literal_type(Optional[str]))) is None


def test_dataclass_is_a_struct_with_json_schema() -> None:
    t = literal_type(Point)
    assert t.simple == types_pb2.STRUCT
    assert t.structure.tag == "Object-Dataclass-Transformer"
    schema = json_format.MessageToDict(t.metadata)
    assert schema == {
        "type": "object",
        "title": "Point",
        "required": ["x"],
        "additionalProperties": False,
        "properties": {"x": {"type": "integer"}, "y": {"type": "number", "default": 0.0}},
    }
    literal = to_literal(Point(1, 2.0), Point)
    assert literal.scalar.binary.tag == "msgpack"
    roundtrip(Point(1, 2.0), Point)
    with pytest.raises(ValueError, match="missing field.*x"):
        literal_from_text('{"y": 1}', t)


def test_pydantic_model_is_a_struct_with_its_json_schema() -> None:
    t = literal_type(Model)
    assert t.simple == types_pb2.STRUCT and t.structure.tag == "Pydantic Transformer"
    assert json_format.MessageToDict(t.metadata)["title"] == "Model"
    roundtrip(Model(name="m", tags=["a"], origin=None), Model)


def test_nested_combinations() -> None:
    tp = list[dict[str, list[Shape] | None]]
    t = literal_type(tp)
    inner = t.collection_type.map_value_type.union_type.variants[0].collection_type
    assert inner.simple == types_pb2.STRUCT and json_format.MessageToDict(inner.metadata)["title"] == "Shape"
    shape = Shape(name="tri", points=[Point(0), Point(1, 1.5)], color=Color.GREEN, tags={"a": None, "b": 2})
    roundtrip([{"s": [shape], "none": None}], tp)


def test_file_and_dir_are_blobs() -> None:
    assert literal_type(fd.File) == lt({"blob": {"format": "", "dimensionality": "SINGLE"}})
    assert literal_type(fd.Dir) == lt({"blob": {"dimensionality": "MULTIPART"}})
    roundtrip(fd.File("s3://bucket/data.csv"), fd.File)
    roundtrip(fd.Dir("s3://bucket/prefix"), fd.Dir)


# -- whole tasks --------------------------------------------------------------------------

types_env = fd.TaskEnvironment(name="types")


@types_env.task
def everything(
    i: int,
    f: float,
    s: str,
    b: bool,
    by: bytes,
    dt: datetime.datetime,
    td: datetime.timedelta,
    color: Color,
    items: list[int],
    table: dict[str, float],
    maybe: str | None,
    either: int | str,
    point: Point,
    model: Model,
    data: fd.File,
    folder: fd.Dir,
    epochs: int = 3,
    when: datetime.datetime | None = None,
    origin: Point = Point(1, 2.0),  # noqa: B008
    shade: Color = Color.GREEN,
) -> tuple[int, Point]:
    return i, point


@types_env.task
def nothing() -> None:
    return None


def make_plan(env: fd.TaskEnvironment, root: Path) -> DeployPlan:
    return DeployPlan(
        request=DeployRequest(mode="objects", objects=(env,)),
        root_dir=root,
        copy_style="all",
        scratch_dir=root,
        environments=(env,),
        images={env.name: Image.from_base("reg.local/img:1")},
        version="v1",
        bundle_uri="file:///store/bundles/abc.tar.gz",
    )


def test_interface_keeps_signature_order_and_names_outputs_o0_o1(tmp_path: Path) -> None:
    spec = serialize(everything, types_env, make_plan(types_env, tmp_path), "p", "d").spec
    interface = spec.task_template.interface
    assert [v.key for v in interface.inputs.variables] == [
        "i",
        "f",
        "s",
        "b",
        "by",
        "dt",
        "td",
        "color",
        "items",
        "table",
        "maybe",
        "either",
        "point",
        "model",
        "data",
        "folder",
        "epochs",
        "when",
        "origin",
        "shade",
    ]
    assert [v.key for v in interface.outputs.variables] == ["o0", "o1"]
    assert interface.outputs.variables[1].value.type == literal_type(Point)
    nothing_spec = serialize(nothing, types_env, make_plan(types_env, tmp_path), "p", "d").spec
    assert len(nothing_spec.task_template.interface.outputs.variables) == 0


def test_defaults_are_recorded_as_default_inputs(tmp_path: Path) -> None:
    spec = serialize(everything, types_env, make_plan(types_env, tmp_path), "p", "d").spec
    defaults = {p.name: p.parameter for p in spec.default_inputs}
    assert list(defaults) == ["epochs", "when", "origin", "shade"]
    assert defaults["epochs"].default.scalar.primitive.integer == 3
    assert defaults["epochs"].var.type == literal_type(int)
    assert from_literal(defaults["when"].default, Optional[datetime.datetime]) is None
    assert from_literal(defaults["origin"].default, Point) == Point(1, 2.0)
    assert from_literal(defaults["shade"].default, Color) is Color.GREEN


BAD_TASKS = {
    "set_input": ("def bad(x: set[int]) -> int: ...", "parameter 'x' (set[int])", "no Flyte representation"),
    "no_annotation": ("def bad(x) -> int: ...", "parameter 'x'", "needs a type annotation"),
    "int_keys": ("def bad(x: dict[int, str]) -> int: ...", "parameter 'x' (dict[int, str])", "keys must be str"),
    "bare_list": ("def bad(x: list) -> int: ...", "parameter 'x' (list)", "element type"),
    "tuple_input": ("def bad(x: tuple[int, int]) -> int: ...", "parameter 'x'", "only supported as return"),
    "any": ("def bad(x: Any) -> int: ...", "parameter 'x' (Any)", "Any has no Flyte type"),
    "no_return": ("def bad(x: int): ...", "return type", "needs an annotation"),
    "bad_return": ("def bad(x: int) -> complex: ...", "return type (complex)", "no Flyte representation"),
    "bad_field": (
        "@dataclasses.dataclass\nclass Holder:\n    s: set[int]\n\n@env.task\ndef bad(x: Holder) -> int: ...",
        "parameter 'x' (Holder)",
        "field Holder.s",
    ),
    "varargs": ("def bad(*xs: int) -> int: ...", "parameter 'xs'", "*args"),
}


@pytest.mark.parametrize("name", sorted(BAD_TASKS))
def test_unserializable_type_names_task_parameter_and_type(tmp_path: Path, name: str) -> None:
    source, where, reason = BAD_TASKS[name]
    if not source.startswith("@"):
        source = "@env.task\n" + source
    module = tmp_path / f"bad_{name}.py"
    module.write_text(
        "import dataclasses\nfrom typing import Any\nimport flyte_deploy as fd\n\n"
        f"env = fd.TaskEnvironment(name='broken')\n\n{source}\n"
    )
    with pytest.raises(SerializationError) as info:
        fd.deploy(_import(module).env, root_dir=tmp_path, dry_run=True)
    message = str(info.value)
    assert "task broken.bad" in message and where in message and reason in message
    assert f"{module}:" in message and "\n" not in message


def _import(path: Path) -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def test_cli_exits_with_serialization_code_and_one_line(tmp_path: Path) -> None:
    (tmp_path / "flow.py").write_text(
        textwrap.dedent("""
        import flyte_deploy as fd
        env = fd.TaskEnvironment(name="broken")

        @env.task
        def bad(numbers: frozenset[int]) -> int:
            return len(numbers)
    """)
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.run(
        [sys.executable, "-m", "flyte_deploy", "deploy", "flow.py", "env", "-q"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == ExitCode.SERIALIZATION_FAILED
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "task broken.bad" in lines[0] and "parameter 'numbers' (frozenset[int])" in lines[0]
    assert not (tmp_path / ".flyte-deploy").exists()  # nothing half-deployed
