"""Python types to flyteidl2 types, and values to literals and back.

Three directions share one set of type rules (the Flyte v2 SDK's, see docs/serialization.md):

* ``literal_type(tp)`` and ``typed_interface(func)``: a type hint, or a function's signature,
  as a ``LiteralType`` / ``TypedInterface`` (inputs by parameter name, outputs ``o0``, ``o1``...).
* ``to_literal(value, tp)`` / ``from_literal(literal, tp)``: Python values, typed by hints
  (used for default inputs and by the runtime).
* ``literal_from_text`` / ``literal_from_json`` / ``literal_to_json``: values typed only by a
  ``LiteralType`` (used by ``flyte-deploy run``, which never imports the user's code).

Supported: int, float, str, bool, bytes, None, datetime, timedelta, Enum (by member name),
``list[T]``, ``dict[str, T]``, ``Optional``/unions, dataclasses and pydantic models (STRUCT
with a JSON schema; values are msgpack ``Binary``), ``flyte_deploy.File``/``Dir`` (blobs),
and nesting of these. Anything else raises ``UnsupportedType``; callers add the task and
parameter to the message.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import enum
import functools
import inspect
import json
import reprlib
import types
import typing
from collections.abc import Callable
from typing import Any

import msgpack
from flyteidl2.core import interface_pb2, literals_pb2, types_pb2
from flyteidl2.task import common_pb2
from google.protobuf import json_format, struct_pb2

from .sdk import Dir, File

NoneType = type(None)
MSGPACK = "msgpack"
DATACLASS_TAG = "Object-Dataclass-Transformer"
PYDANTIC_TAG = "Pydantic Transformer"
SINGLE = types_pb2.BlobType.SINGLE
MULTIPART = types_pb2.BlobType.MULTIPART


class UnsupportedType(Exception):
    """A type (or value) that has no Flyte representation; the message says why."""


# -- type helpers -----------------------------------------------------------------------


def type_name(tp: Any) -> str:
    """A readable name for a type hint: ``int``, ``list[int]``, ``Point``, ``none``."""
    if tp is NoneType or tp is None:
        return "none"
    origin = typing.get_origin(tp)
    if origin is not None and origin not in (typing.Union, types.UnionType):
        args = ", ".join(type_name(a) for a in typing.get_args(tp))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", repr(tp))


def a_type(tp: Any) -> str:
    """``a list[int]``, ``an int``: a type's name with its article, for messages."""
    name = type_name(tp)
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def _strip_annotated(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _is_pydantic(tp: Any) -> bool:
    return isinstance(tp, type) and any(
        c.__module__.startswith("pydantic") and c.__name__ == "BaseModel" for c in tp.__mro__
    )


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp) and tp not in (File, Dir)


def _union_args(tp: Any) -> tuple[Any, ...] | None:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return typing.get_args(tp)
    return None


def _list_arg(tp: Any) -> Any:
    if tp in (list, list):
        raise UnsupportedType("list needs an element type, e.g. list[int]")
    if typing.get_origin(tp) is list:
        return typing.get_args(tp)[0]
    return None


def _dict_arg(tp: Any) -> Any:
    if tp in (dict, dict):
        raise UnsupportedType("dict needs key and value types, e.g. dict[str, float]")
    if typing.get_origin(tp) is dict:
        key, value = typing.get_args(tp)
        if key is not str:
            raise UnsupportedType(f"dict keys must be str, got {type_name(key)}")
        return value
    return None


_SIMPLE: dict[Any, int] = {
    NoneType: types_pb2.NONE,
    bool: types_pb2.BOOLEAN,
    int: types_pb2.INTEGER,
    float: types_pb2.FLOAT,
    str: types_pb2.STRING,
    bytes: types_pb2.BINARY,
    datetime.datetime: types_pb2.DATETIME,
    datetime.timedelta: types_pb2.DURATION,
}


# -- Python type -> LiteralType ------------------------------------------------------------


def literal_type(tp: Any) -> types_pb2.LiteralType:
    """The ``LiteralType`` of a type hint; ``UnsupportedType`` when there is none."""
    tp = _strip_annotated(tp)
    if tp is None:
        tp = NoneType
    if tp in _SIMPLE:
        return types_pb2.LiteralType(simple=_SIMPLE[tp])
    variants = _union_args(tp)
    if variants is not None:
        return types_pb2.LiteralType(
            union_type=types_pb2.UnionType(variants=[_tagged(literal_type(v), type_name(v)) for v in variants])
        )
    element = _list_arg(tp)
    if element is not None:
        return types_pb2.LiteralType(collection_type=literal_type(element))
    value = _dict_arg(tp)
    if value is not None:
        return types_pb2.LiteralType(map_value_type=literal_type(value))
    if tp is File:
        return types_pb2.LiteralType(blob=types_pb2.BlobType(format="", dimensionality=SINGLE))
    if tp is Dir:
        return types_pb2.LiteralType(blob=types_pb2.BlobType(format="", dimensionality=MULTIPART))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return types_pb2.LiteralType(enum_type=types_pb2.EnumType(values=[m.name for m in tp]))
    if _is_pydantic(tp):
        return _struct_type(tp.model_json_schema(), PYDANTIC_TAG)
    if _is_dataclass_type(tp):
        return _struct_type(dataclass_schema(tp), DATACLASS_TAG)
    if tp is typing.Any or tp is inspect.Parameter.empty:
        raise UnsupportedType("an annotation is required (Any has no Flyte type)")
    if typing.get_origin(tp) is tuple or tp is tuple:
        raise UnsupportedType("tuples are only supported as return types (one output per element)")
    raise UnsupportedType(f"type {type_name(tp)} has no Flyte representation")


def _tagged(lt: types_pb2.LiteralType, tag: str) -> types_pb2.LiteralType:
    lt.structure.tag = tag
    return lt


def _struct_type(schema: dict[str, Any], tag: str) -> types_pb2.LiteralType:
    metadata = struct_pb2.Struct()
    metadata.update(schema)
    annotation = struct_pb2.Struct()
    annotation.update({"cache-key-metadata": {"serialization-format": MSGPACK}})
    return types_pb2.LiteralType(
        simple=types_pb2.STRUCT,
        metadata=metadata,
        annotation=types_pb2.TypeAnnotation(annotations=annotation),
        structure=types_pb2.TypeStructure(tag=tag),
    )


def _hints(tp: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(tp)
    except Exception as exc:  # unresolvable forward references
        raise UnsupportedType(f"type hints of {type_name(tp)} cannot be resolved: {exc}") from None


def dataclass_schema(tp: type) -> dict[str, Any]:
    """A JSON schema of a dataclass (nested dataclasses inlined), like the Flyte SDK's."""
    hints = _hints(tp)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for f in dataclasses.fields(tp):
        schema = _json_schema(hints[f.name], f"{type_name(tp)}.{f.name}")
        if f.default is not dataclasses.MISSING:
            schema["default"] = to_jsonable(f.default, hints[f.name])
        elif f.default_factory is not dataclasses.MISSING:
            schema["default"] = to_jsonable(f.default_factory(), hints[f.name])
        else:
            required.append(f.name)
        properties[f.name] = schema
    return {
        "type": "object",
        "title": tp.__name__,
        "required": required,
        "properties": properties,
        "additionalProperties": False,
    }


def _json_schema(tp: Any, where: str) -> dict[str, Any]:
    tp = _strip_annotated(tp)
    simple = {bool: "boolean", int: "integer", float: "number", str: "string", NoneType: "null"}
    if tp in simple:
        return {"type": simple[tp]}
    if tp is datetime.datetime:
        return {"type": "string", "format": "date-time"}
    if tp is datetime.timedelta:
        return {"type": "string", "format": "duration"}
    if tp is bytes:
        return {"type": "string", "format": "binary"}
    variants = _union_args(tp)
    if variants is not None:
        return {"anyOf": [_json_schema(v, where) for v in variants]}
    try:
        element = _list_arg(tp)
        value = _dict_arg(tp)
    except UnsupportedType as exc:
        raise UnsupportedType(f"field {where}: {exc}") from None
    if element is not None:
        return {"type": "array", "items": _json_schema(element, where)}
    if value is not None:
        return {"type": "object", "additionalProperties": _json_schema(value, where)}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {"enum": [m.value for m in tp]}
    if _is_pydantic(tp):
        return tp.model_json_schema()
    if _is_dataclass_type(tp):
        return dataclass_schema(tp)
    if tp in (File, Dir):
        return {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}
    raise UnsupportedType(f"field {where}: type {type_name(tp)} has no Flyte representation")


# -- functions -> TypedInterface -------------------------------------------------------------


class InterfaceError(UnsupportedType):
    """An unsupported parameter or return type; ``parameter`` names it (``return`` for outputs)."""

    def __init__(self, parameter: str, tp: Any, reason: str) -> None:
        self.parameter, self.type = parameter, tp
        super().__init__(reason)


def output_types(func: Callable[..., Any]) -> list[Any]:
    """The output types of ``func`` in order (``o0``, ``o1``, ...): none for ``-> None``, one per
    element of a ``tuple[...]`` return, else one."""
    hints = _function_hints(func)
    if "return" not in hints:
        raise InterfaceError(
            "return", inspect.Parameter.empty, "the return type needs an annotation (-> None when it returns nothing)"
        )
    ret = _strip_annotated(hints["return"])
    if ret is None or ret is NoneType:
        return []
    if typing.get_origin(ret) is tuple:
        args = typing.get_args(ret)
        if not args or args[-1] is Ellipsis:
            raise InterfaceError("return", ret, "a tuple return needs one type per element, e.g. tuple[int, str]")
        return list(args)
    return [ret]


def _function_hints(func: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(func, include_extras=True)
    except Exception as exc:
        raise InterfaceError("annotations", None, f"type hints cannot be resolved: {exc}") from None


def input_parameters(func: Callable[..., Any]) -> list[tuple[str, Any, Any]]:
    """``(name, type, default)`` per parameter; ``default`` is ``inspect.Parameter.empty``
    when there is none. ``*args``/``**kwargs`` are an ``InterfaceError``."""
    hints = _function_hints(func)
    params = []
    for name, param in inspect.signature(func).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise InterfaceError(name, None, "*args and **kwargs cannot be task inputs")
        if name not in hints:
            raise InterfaceError(name, inspect.Parameter.empty, "the parameter needs a type annotation")
        params.append((name, hints[name], param.default))
    return params


def typed_interface(func: Callable[..., Any]) -> tuple[interface_pb2.TypedInterface, list[common_pb2.NamedParameter]]:
    """The task interface of ``func`` and its default inputs (one ``NamedParameter`` per
    parameter with a default). Inputs keep the signature's order."""
    inputs, defaults = [], []
    for name, tp, default in input_parameters(func):
        lt = _checked(name, tp, literal_type)
        inputs.append(interface_pb2.VariableEntry(key=name, value=interface_pb2.Variable(type=lt)))
        if default is not inspect.Parameter.empty:
            literal = _checked(name, tp, functools.partial(to_literal, default), "default ")
            defaults.append(
                common_pb2.NamedParameter(
                    name=name, parameter=interface_pb2.Parameter(var=interface_pb2.Variable(type=lt), default=literal)
                )
            )
    outputs = []
    for index, tp in enumerate(output_types(func)):
        name = f"o{index}"
        outputs.append(
            interface_pb2.VariableEntry(
                key=name, value=interface_pb2.Variable(type=_checked("return", tp, literal_type))
            )
        )
    interface = interface_pb2.TypedInterface(
        inputs=interface_pb2.VariableMap(variables=inputs), outputs=interface_pb2.VariableMap(variables=outputs)
    )
    return interface, defaults


def _checked(parameter: str, tp: Any, convert: Callable[[Any], Any], prefix: str = "") -> Any:
    try:
        return convert(tp)
    except InterfaceError:
        raise
    except UnsupportedType as exc:
        raise InterfaceError(parameter, tp, prefix + str(exc)) from None


# -- Python values <-> literals ---------------------------------------------------------------


def _scalar(**kwargs: Any) -> literals_pb2.Literal:
    return literals_pb2.Literal(scalar=literals_pb2.Scalar(**kwargs))


def _primitive(**kwargs: Any) -> literals_pb2.Literal:
    return _scalar(primitive=literals_pb2.Primitive(**kwargs))


def _utc(value: datetime.datetime) -> datetime.datetime:
    return value.replace(tzinfo=datetime.UTC) if value.tzinfo is None else value


def _matches(value: Any, tp: Any) -> bool:
    """Whether ``value`` can be converted as ``tp`` (for picking a union variant)."""
    tp = _strip_annotated(tp)
    if tp is NoneType or tp is None:
        return value is None
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, v) for v in typing.get_args(tp))
    if origin is list:
        return isinstance(value, list) and all(_matches(v, typing.get_args(tp)[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(_matches(v, typing.get_args(tp)[1]) for v in value.values())
    return isinstance(value, tp) if isinstance(tp, type) else False


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _integer(value: int, error: type[Exception]) -> literals_pb2.Literal:
    """An integer literal; one outside int64 (what a Flyte literal holds) raises ``error``."""
    if not INT64_MIN <= value <= INT64_MAX:
        shown = str(value) if value.bit_length() <= 256 else f"of {value.bit_length()} bits"
        raise error(f"integer {shown} does not fit in 64 bits ({INT64_MIN} to {INT64_MAX})")
    return _primitive(integer=value)


def to_literal(value: Any, tp: Any) -> literals_pb2.Literal:
    """``value`` as a ``Literal`` of type ``tp``; ``UnsupportedType`` when it does not fit."""
    tp = _strip_annotated(tp)
    if tp is None:
        tp = NoneType
    variants = _union_args(tp)
    if variants is not None:
        for variant in variants:
            if _matches(value, variant):
                return _scalar(
                    union=literals_pb2.Union(
                        value=to_literal(value, variant), type=_tagged(literal_type(variant), type_name(variant))
                    )
                )
        raise UnsupportedType(f"value {value!r} matches no variant of {type_name(tp)}")
    if not _matches(value, tp) and tp not in (File, Dir) and not _is_pydantic(tp) and not _is_dataclass_type(tp):
        raise UnsupportedType(f"value {value!r} is not {a_type(tp)}")
    if tp is NoneType:
        return _scalar(none_type=literals_pb2.Void())
    if tp is bool:
        return _primitive(boolean=value)
    if tp is int:
        return _integer(value, UnsupportedType)
    if tp is float:
        return _primitive(float_value=float(value))
    if tp is str:
        return _primitive(string_value=value)
    if tp is bytes:
        return _scalar(binary=literals_pb2.Binary(value=value))
    if tp is datetime.datetime:
        literal = _primitive()
        literal.scalar.primitive.datetime.FromDatetime(_utc(value))
        return literal
    if tp is datetime.timedelta:
        literal = _primitive()
        literal.scalar.primitive.duration.FromTimedelta(value)
        return literal
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _primitive(string_value=value.name)
    if typing.get_origin(tp) is list:
        element = typing.get_args(tp)[0]
        return literals_pb2.Literal(
            collection=literals_pb2.LiteralCollection(literals=[to_literal(v, element) for v in value])
        )
    if typing.get_origin(tp) is dict:
        element = typing.get_args(tp)[1]
        return literals_pb2.Literal(
            map=literals_pb2.LiteralMap(literals={k: to_literal(v, element) for k, v in value.items()})
        )
    if tp in (File, Dir):
        if not isinstance(value, tp):
            raise UnsupportedType(f"value {value!r} is not {a_type(tp)}")
        return _scalar(
            blob=literals_pb2.Blob(uri=value.path, metadata=literals_pb2.BlobMetadata(type=literal_type(tp).blob))
        )
    if _is_pydantic(tp) or _is_dataclass_type(tp):
        if not isinstance(value, tp):
            raise UnsupportedType(f"value {value!r} is not {a_type(tp)}")
        return _scalar(binary=literals_pb2.Binary(value=msgpack.packb(to_jsonable(value, tp)), tag=MSGPACK))
    raise UnsupportedType(f"type {type_name(tp)} has no Flyte representation")


def from_literal(literal: literals_pb2.Literal, tp: Any) -> Any:
    """The Python value of ``literal`` as type ``tp``; ``UnsupportedType`` on a mismatch."""
    tp = _strip_annotated(tp)
    if tp is None:
        tp = NoneType
    kind = literal.WhichOneof("value")
    scalar = literal.scalar
    if kind == "scalar" and scalar.WhichOneof("value") == "union":
        literal = scalar.union.value
        kind, scalar = literal.WhichOneof("value"), literal.scalar
    variants = _union_args(tp)
    if variants is not None:
        errors = []
        for variant in variants:
            try:
                return from_literal(literal, variant)
            except UnsupportedType as exc:
                errors.append(str(exc))
        raise UnsupportedType(f"literal fits no variant of {type_name(tp)}: {'; '.join(errors)}")
    if typing.get_origin(tp) is list:
        if kind != "collection":
            raise UnsupportedType(f"expected a collection for {type_name(tp)}, got {kind}")
        return [from_literal(v, typing.get_args(tp)[0]) for v in literal.collection.literals]
    if typing.get_origin(tp) is dict:
        if kind != "map":
            raise UnsupportedType(f"expected a map for {type_name(tp)}, got {kind}")
        return {k: from_literal(v, typing.get_args(tp)[1]) for k, v in literal.map.literals.items()}
    which = scalar.WhichOneof("value") if kind == "scalar" else kind
    if tp is NoneType:
        if which != "none_type":
            raise UnsupportedType(f"expected none, got {which}")
        return None
    if which == "primitive":
        return _from_primitive(scalar.primitive, tp)
    if which == "binary":
        if tp is bytes and scalar.binary.tag != MSGPACK:
            return scalar.binary.value
        if scalar.binary.tag == MSGPACK and (_is_pydantic(tp) or _is_dataclass_type(tp)):
            return from_jsonable(msgpack.unpackb(scalar.binary.value), tp)
    if which == "blob" and tp in (File, Dir):
        return tp(path=scalar.blob.uri)
    raise UnsupportedType(f"a {which} literal is not {a_type(tp)}")


def _from_primitive(primitive: literals_pb2.Primitive, tp: Any) -> Any:
    which = primitive.WhichOneof("value")
    if tp is bool and which == "boolean":
        return primitive.boolean
    if tp is int and which == "integer":
        return primitive.integer
    if tp is float and which in ("float_value", "integer"):
        return float(getattr(primitive, which))
    if tp is str and which == "string_value":
        return primitive.string_value
    if tp is datetime.datetime and which == "datetime":
        return primitive.datetime.ToDatetime(tzinfo=datetime.UTC)
    if tp is datetime.timedelta and which == "duration":
        return primitive.duration.ToTimedelta()
    if isinstance(tp, type) and issubclass(tp, enum.Enum) and which == "string_value":
        try:
            return tp[primitive.string_value]
        except KeyError:
            raise UnsupportedType(f"{primitive.string_value!r} is not a member of {tp.__name__}") from None
    raise UnsupportedType(f"a {which} is not {a_type(tp)}")


# -- Python values <-> JSON-able data (dataclass and pydantic fields) ------------------------


def to_jsonable(value: Any, tp: Any) -> Any:
    """``value`` as JSON-able data, by type: the payload of structured literals."""
    tp = _strip_annotated(tp)
    if _is_pydantic(tp):
        return value.model_dump(mode="json")
    if _is_dataclass_type(tp):
        hints = _hints(tp)
        return {f.name: to_jsonable(getattr(value, f.name), hints[f.name]) for f in dataclasses.fields(tp)}
    variants = _union_args(tp)
    if variants is not None:
        for variant in variants:
            if _matches(value, variant):
                return to_jsonable(value, variant)
        raise UnsupportedType(f"value {value!r} matches no variant of {type_name(tp)}")
    if typing.get_origin(tp) is list:
        return [to_jsonable(v, typing.get_args(tp)[0]) for v in value]
    if typing.get_origin(tp) is dict:
        return {k: to_jsonable(v, typing.get_args(tp)[1]) for k, v in value.items()}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return value
    if isinstance(value, (File, Dir)):
        return {"path": value.path}
    return value


def from_jsonable(data: Any, tp: Any) -> Any:
    """The inverse of ``to_jsonable``."""
    tp = _strip_annotated(tp)
    if _is_pydantic(tp):
        return tp.model_validate(data)
    if _is_dataclass_type(tp):
        if not isinstance(data, dict):
            raise UnsupportedType(f"{type_name(tp)} needs an object, got {data!r}")
        hints = _hints(tp)
        return tp(
            **{f.name: from_jsonable(data[f.name], hints[f.name]) for f in dataclasses.fields(tp) if f.name in data}
        )
    variants = _union_args(tp)
    if variants is not None:
        for variant in variants:
            try:
                value = from_jsonable(data, variant)
            except (UnsupportedType, ValueError, TypeError, KeyError):
                continue
            if _matches(value, variant) or _is_dataclass_type(variant) or _is_pydantic(variant):
                return value
        raise UnsupportedType(f"{data!r} matches no variant of {type_name(tp)}")
    if typing.get_origin(tp) is list:
        return [from_jsonable(v, typing.get_args(tp)[0]) for v in data]
    if typing.get_origin(tp) is dict:
        return {k: from_jsonable(v, typing.get_args(tp)[1]) for k, v in data.items()}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp(data)
    if tp is datetime.datetime:
        return datetime.datetime.fromisoformat(data)
    if tp is datetime.timedelta:
        return datetime.timedelta(seconds=data)
    if tp is float and isinstance(data, int):
        return float(data)
    if tp in (File, Dir):
        return tp(path=data["path"])
    return data


# -- literals typed by LiteralType only (the run command) ---------------------------------------


def _describe(lt: types_pb2.LiteralType) -> str:
    kind = lt.WhichOneof("type")
    if kind == "simple":
        return types_pb2.SimpleType.Name(lt.simple).lower()
    if kind == "collection_type":
        return f"list[{_describe(lt.collection_type)}]"
    if kind == "map_value_type":
        return f"dict[str, {_describe(lt.map_value_type)}]"
    if kind == "union_type":
        return " | ".join(v.structure.tag or _describe(v) for v in lt.union_type.variants)
    if kind == "enum_type":
        return "enum(" + ", ".join(lt.enum_type.values) + ")"
    if kind == "blob":
        return "dir" if lt.blob.dimensionality == MULTIPART else "file"
    return kind or "unknown"


def _parse_duration(text: str) -> datetime.timedelta:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip()
    if text and text[-1] in units:
        return datetime.timedelta(seconds=float(text[:-1]) * units[text[-1]])
    return datetime.timedelta(seconds=float(text))


def literal_from_text(text: str, lt: types_pb2.LiteralType) -> literals_pb2.Literal:
    """A command-line value as a literal of ``lt``: strings as written, numbers, booleans
    (true/false), ISO datetimes, durations (``90``, ``1.5h``), enum names, file URIs; lists,
    dicts, structs and unions as JSON. ``ValueError`` says what was expected."""
    try:
        return _literal_from_text(text, lt)
    except RecursionError:
        raise ValueError("the value is nested too deeply to convert") from None


def _literal_from_text(text: str, lt: types_pb2.LiteralType) -> literals_pb2.Literal:
    kind = lt.WhichOneof("type")
    if (
        kind == "simple"
        and lt.simple in (types_pb2.STRING, types_pb2.BINARY, types_pb2.DATETIME, types_pb2.DURATION)
        or kind in ("enum_type", "blob")
    ):
        return literal_from_json(text, lt)
    if kind == "simple" and lt.simple == types_pb2.BOOLEAN and text.lower() in ("true", "false", "yes", "no"):
        return literal_from_json(text.lower() in ("true", "yes"), lt)
    if kind == "union_type":
        try:
            return literal_from_json(json.loads(text), lt)
        except (json.JSONDecodeError, ValueError):
            return literal_from_json(text, lt)  # plain text, for the union's str variant
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise ValueError(f"expected {_describe(lt)}, got {text!r}") from None
    return literal_from_json(data, lt)


def literal_from_json(data: Any, lt: types_pb2.LiteralType) -> literals_pb2.Literal:
    """JSON data as a literal of ``lt``; ``ValueError`` says what was expected."""
    kind = lt.WhichOneof("type")
    expected = f"expected {_describe(lt)}, got {reprlib.repr(data)}"
    if kind == "union_type":
        for variant in lt.union_type.variants:
            try:
                return _scalar(union=literals_pb2.Union(value=literal_from_json(data, variant), type=variant))
            except ValueError:
                continue
        raise ValueError(expected)
    if kind == "collection_type":
        if not isinstance(data, list):
            raise ValueError(expected)
        return literals_pb2.Literal(
            collection=literals_pb2.LiteralCollection(literals=[literal_from_json(v, lt.collection_type) for v in data])
        )
    if kind == "map_value_type":
        if not isinstance(data, dict):
            raise ValueError(expected)
        return literals_pb2.Literal(
            map=literals_pb2.LiteralMap(
                literals={str(k): literal_from_json(v, lt.map_value_type) for k, v in data.items()}
            )
        )
    if kind == "enum_type":
        if data not in lt.enum_type.values:
            raise ValueError(expected)
        return _primitive(string_value=data)
    if kind == "blob":
        if isinstance(data, dict) and isinstance(data.get("path"), str):
            data = data["path"]
        if not isinstance(data, str):
            raise ValueError(expected)
        return _scalar(blob=literals_pb2.Blob(uri=data, metadata=literals_pb2.BlobMetadata(type=lt.blob)))
    if kind != "simple":
        raise ValueError(f"inputs of kind {kind} are not supported")
    simple = lt.simple
    if simple == types_pb2.NONE:
        if data not in (None, "", "none", "null"):
            raise ValueError(expected)
        return _scalar(none_type=literals_pb2.Void())
    if simple == types_pb2.BOOLEAN and isinstance(data, bool):
        return _primitive(boolean=data)
    if simple == types_pb2.INTEGER and isinstance(data, int) and not isinstance(data, bool):
        return _integer(data, ValueError)
    if simple == types_pb2.FLOAT and isinstance(data, (int, float)) and not isinstance(data, bool):
        return _primitive(float_value=float(data))
    if simple == types_pb2.STRING and isinstance(data, str):
        return _primitive(string_value=data)
    if simple == types_pb2.BINARY and isinstance(data, str):
        return _scalar(binary=literals_pb2.Binary(value=data.encode()))
    if simple == types_pb2.DATETIME and isinstance(data, str):
        try:
            return to_literal(datetime.datetime.fromisoformat(data), datetime.datetime)
        except ValueError:
            raise ValueError(f"expected an ISO 8601 datetime, got {data!r}") from None
    if simple == types_pb2.DURATION and isinstance(data, (str, int, float)) and not isinstance(data, bool):
        try:
            return to_literal(_parse_duration(str(data)), datetime.timedelta)
        except ValueError:
            raise ValueError(f"expected a duration (seconds, or a number with s/m/h/d), got {data!r}") from None
    if simple == types_pb2.STRUCT and isinstance(data, dict):
        schema = json_format.MessageToDict(lt.metadata) if lt.HasField("metadata") else {}
        missing = [k for k in schema.get("required", []) if k not in data]
        if missing:
            raise ValueError(f"{schema.get('title', 'struct')} is missing field(s) {', '.join(missing)}")
        return _scalar(binary=literals_pb2.Binary(value=msgpack.packb(data), tag=MSGPACK))
    raise ValueError(expected)


def literal_to_json(literal: literals_pb2.Literal) -> Any:
    """A literal as JSON-able data: datetimes as ISO strings, durations in seconds, structs as
    objects, bytes as text (or ``base64:...`` when not UTF-8), blobs as their URI."""
    kind = literal.WhichOneof("value")
    if kind == "collection":
        return [literal_to_json(v) for v in literal.collection.literals]
    if kind == "map":
        return {k: literal_to_json(v) for k, v in sorted(literal.map.literals.items())}
    scalar = literal.scalar
    which = scalar.WhichOneof("value")
    if which == "union":
        return literal_to_json(scalar.union.value)
    if which == "none_type":
        return None
    if which == "blob":
        return scalar.blob.uri
    if which == "binary":
        if scalar.binary.tag == MSGPACK:
            return msgpack.unpackb(scalar.binary.value)
        try:
            return scalar.binary.value.decode()
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(scalar.binary.value).decode()
    if which == "generic":
        return json_format.MessageToDict(scalar.generic)
    if which == "primitive":
        primitive = scalar.primitive
        field = primitive.WhichOneof("value")
        if field == "datetime":
            return primitive.datetime.ToDatetime(tzinfo=datetime.UTC).isoformat()
        if field == "duration":
            return primitive.duration.ToTimedelta().total_seconds()
        return getattr(primitive, field)
    raise ValueError(f"cannot show a {which or kind} literal")


def named_literals(values: dict[str, literals_pb2.Literal]) -> list[common_pb2.NamedLiteral]:
    return [common_pb2.NamedLiteral(name=k, value=v) for k, v in values.items()]
