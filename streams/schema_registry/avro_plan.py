"""Avro schemas compiled for the C codec (_avrofast.c), when it is built and the schema suits it.

compiled(schema) turns an Avro schema (parsed JSON) into the codec's compiled
plan, or returns None when the schema needs what only fastavro does: unions
other than null and one type, recursive types, or logical types on named types
(a decimal on a fixed).  Logical types on primitives (timestamps, dates, UUIDs,
decimals in bytes) are converted by fastavro's own functions, called from C.
With None, or without the extension (pip built the package with no C
compiler), AvroSerde uses fastavro alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastavro.read import LOGICAL_READERS
from fastavro.write import LOGICAL_WRITERS

try:
    from streams.schema_registry import _avrofast
except ImportError:  # built without a C compiler: fastavro does all the work
    _avrofast = None

NULL, BOOLEAN, INT, LONG, FLOAT, DOUBLE, BYTES, STRING, RECORD, ENUM, ARRAY, MAP, OPTIONAL, FIXED, LOGICAL = range(15)
PRIMITIVES = {"null": NULL, "boolean": BOOLEAN, "int": INT, "long": LONG, "float": FLOAT, "double": DOUBLE,
              "bytes": BYTES, "string": STRING}
# encode(plan, value) -> bytes and decode(plan, data, offset) -> value raise ValueError (the codec's
# Unsupported) for a record fastavro must handle; only called with a plan, so never without the extension.
encode: Callable[[Any, Any], bytes] = getattr(_avrofast, "encode", None)  # type: ignore[assignment]
decode: Callable[[Any, bytes, int], Any] = getattr(_avrofast, "decode", None)  # type: ignore[assignment]
_BUILDING = ()  # a named type whose plan is not finished: a reference to it is a recursive type


class _Unsupported(Exception):
    """The schema needs fastavro."""


def available() -> bool:
    """Whether the C codec was built."""
    return _avrofast is not None


def compiled(schema: Any) -> Any:
    """The codec's compiled plan for `schema`, or None if fastavro must handle it."""
    if _avrofast is None:
        return None
    try:
        return _avrofast.compile(plan(schema))
    except _Unsupported:
        return None


def plan(schema: Any, names: dict[str, tuple] | None = None, namespace: str | None = None) -> tuple:
    """The plan of nested tuples that _avrofast.compile() takes (see its header); _Unsupported if none."""
    names = {} if names is None else names
    if isinstance(schema, str):
        if schema in PRIMITIVES:
            return (PRIMITIVES[schema],)
        found = names.get(schema if "." in schema or not namespace else f"{namespace}.{schema}",
                          names.get(schema))
        if not found:  # unknown, or still being built (recursive)
            raise _Unsupported(schema)
        return found
    if isinstance(schema, list):
        if len(schema) != 2 or "null" not in schema or schema[0] == schema[1] \
                or any(isinstance(branch, list) for branch in schema):
            raise _Unsupported("union")
        null_index = schema.index("null")
        return (OPTIONAL, null_index, plan(schema[1 - null_index], names, namespace))
    if not isinstance(schema, dict):
        raise _Unsupported(repr(schema))
    kind = schema.get("type")
    if "logicalType" in schema:
        if not isinstance(kind, str) or kind not in PRIMITIVES:
            raise _Unsupported("a logical type on a named type")
        key = f"{kind}-{schema['logicalType']}"  # fastavro's key; an unknown logical type is its base type
        reader, writer = LOGICAL_READERS.get(key), LOGICAL_WRITERS.get(key)
        if reader is None and writer is None:
            return (PRIMITIVES[kind],)
        return (LOGICAL, (PRIMITIVES[kind],), reader, writer, schema)
    if isinstance(kind, (list, dict)):
        return plan(kind, names, namespace)
    if kind in PRIMITIVES:
        return (PRIMITIVES[kind],)
    if kind == "array":
        return (ARRAY, plan(schema["items"], names, namespace))
    if kind == "map":
        return (MAP, plan(schema["values"], names, namespace))
    if kind not in ("record", "error", "enum", "fixed"):
        raise _Unsupported(str(kind))
    name = schema["name"]
    namespace = schema.get("namespace", namespace) if "." not in name else name.rsplit(".", 1)[0]
    fullname = name if "." in name or not namespace else f"{namespace}.{name}"
    if kind == "enum":
        node: tuple = (ENUM, tuple(schema["symbols"]))
    elif kind == "fixed":
        node = (FIXED, int(schema["size"]))
    else:
        names[fullname] = _BUILDING
        fields = schema["fields"]
        node = (RECORD, tuple(f["name"] for f in fields), tuple(plan(f["type"], names, namespace) for f in fields))
    names[fullname] = node
    return node
