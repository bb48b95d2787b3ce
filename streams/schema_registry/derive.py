"""Schemas derived from model types, so that a model class is the only definition of a record.

avro_schema() maps a dataclass, msgspec.Struct or pydantic model field by field:
int -> long, float -> double, str -> string, bool -> boolean, bytes -> bytes,
datetime -> timestamp-millis, date -> date, UUID -> uuid, a str Enum -> enum,
list[X] -> array, dict[str, X] -> map, X | None -> a union with null, and a
nested model -> a nested record.  Field defaults become Avro defaults, which is
what lets a newer reader read records written before a field existed.
json_schema() asks msgspec or pydantic for the JSON Schema of the model.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import types
import typing
import uuid
from typing import Any

import msgspec

from streams.models import is_model, is_pydantic_model

_PRIMITIVES: dict[Any, Any] = {
    type(None): "null",
    bool: "boolean",
    int: "long",
    float: "double",
    str: "string",
    bytes: "bytes",
    datetime.datetime: {"type": "long", "logicalType": "timestamp-millis"},
    datetime.date: {"type": "int", "logicalType": "date"},
    uuid.UUID: {"type": "string", "logicalType": "uuid"},
}
_MISSING = object()


def avro_schema(model: type) -> dict[str, Any]:
    """The Avro record schema of a model type."""
    return _record(model, set())


def json_schema(model: type) -> dict[str, Any]:
    """The JSON Schema of a model type, titled with the model's name."""
    if is_pydantic_model(model):
        schema = model.model_json_schema()  # type: ignore[attr-defined]
    else:
        schema = msgspec.json.schema(model)
        ref = schema.get("$ref", "")
        if ref.startswith("#/$defs/"):  # msgspec refers to the model; inline it at the top
            defs = dict(schema.get("$defs", {}))
            schema = {**defs.pop(ref.removeprefix("#/$defs/")), **({"$defs": defs} if defs else {})}
    return {"$schema": "http://json-schema.org/draft-07/schema#", "title": model.__name__, **schema}


def _fields(model: type) -> list[tuple[str, Any, Any]]:
    """(name, type, default or _MISSING) of each field."""
    hints = typing.get_type_hints(model)
    if is_pydantic_model(model):
        out = []
        for name, info in model.model_fields.items():  # type: ignore[attr-defined]
            default = _MISSING if info.is_required() else info.get_default(call_default_factory=True)
            out.append((name, hints.get(name, info.annotation), default))
        return out
    if isinstance(model, type) and issubclass(model, msgspec.Struct):
        return [(f.name, f.type, _struct_default(f)) for f in msgspec.structs.fields(model)]
    return [(f.name, hints[f.name], _dataclass_default(f)) for f in dataclasses.fields(model)]


def _struct_default(field: msgspec.structs.FieldInfo) -> Any:
    if field.default is not msgspec.NODEFAULT:
        return field.default
    if field.default_factory is not msgspec.NODEFAULT:
        return field.default_factory()
    return _MISSING


def _dataclass_default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return _MISSING


def _record(model: type, named: set[str]) -> dict[str, Any] | str:
    name = model.__name__
    if name in named:
        return name
    named.add(name)
    fields = []
    for field_name, tp, default in _fields(model):
        field: dict[str, Any] = {"name": field_name, "type": _type(tp, named, f"{name}.{field_name}")}
        if default is not _MISSING:
            field["type"] = _default_first(field["type"], default)
            field["default"] = msgspec.to_builtins(default)
        fields.append(field)
    return {"type": "record", "name": name, "fields": fields}


def _type(tp: Any, named: set[str], where: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        return _type(args[0], named, where)
    if origin in (typing.Union, types.UnionType):
        members = [_type(arg, named, where) for arg in args]
        return sorted(members, key=lambda m: m != "null")  # null first, so None can be the default
    if origin in (list, tuple, set, frozenset) and args:
        return {"type": "array", "items": _type(args[0], named, where)}
    if origin is dict and args:
        if args[0] is not str:
            raise ValueError(f"{where}: Avro maps need str keys, got {args[0]!r}")
        return {"type": "map", "values": _type(args[1], named, where)}
    if tp in _PRIMITIVES:
        return _PRIMITIVES[tp]
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        symbols = [member.value for member in tp]
        if not all(isinstance(s, str) for s in symbols):
            raise ValueError(f"{where}: only Enums of str values map to Avro enums")
        if tp.__name__ in named:
            return tp.__name__
        named.add(tp.__name__)
        return {"type": "enum", "name": tp.__name__, "symbols": symbols}
    if is_model(tp):
        return _record(tp, named)
    raise ValueError(f"{where}: no Avro type for {tp!r}; give the schema as JSON instead")


def _default_first(avro_type: Any, default: Any) -> Any:
    """Avro takes a union's default from its first member: put the member of the default's type first."""
    if not isinstance(avro_type, list) or default is None:
        return avro_type
    rest = [m for m in avro_type if m != "null"]
    return [*rest, *(m for m in avro_type if m == "null")]
