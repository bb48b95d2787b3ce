"""Serializers and deserializers for keys and values.

A serde is named by a string ("str", "json", "bytes", "int", "float") or given
as an object with serialize/deserialize methods.  None always maps to None so
that tombstones pass through every serde.

A serde may also offer serialize_many/deserialize_many, which take and return
lists and must equal the single-record methods applied in turn.  Sources and
sinks use them to convert a whole batch in one call, a tenth less time per
record than a call each; they must have no side effects, because on a failure
the batch is converted again one record at a time to single out the bad one.

Two more methods are optional.  bind(topic, is_key) returns the serde to use
for one topic's keys or values; the DSL calls it wherever it pairs a serde with
a topic, because a schema-registry serde names its subject after the topic.
check() is called once when a worker starts and raises if the serde cannot work
(its registry is down), so that the worker stops at once and says why.

A key serde may offer partition(key_bytes, partitions) -> int too: sinks then
place records with it instead of hashing the whole key (windowed keys are placed
by their inner key).

A model type (dataclass, msgspec.Struct, pydantic model) given as key_type or
value_type makes the JSON serde a ModelSerde of that type (streams/models.py),
and a schema-registry serde one that derives its schema from the type.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

import orjson

from streams.errors import StartupError, StreamsError
from streams.models import ModelSerde, json_default


@runtime_checkable
class Serde(Protocol):
    def serialize(self, obj: Any) -> bytes | None: ...

    def deserialize(self, data: bytes | None) -> Any: ...


class BytesSerde:
    name = "bytes"

    def serialize(self, obj: Any) -> bytes | None:
        if obj is None or isinstance(obj, bytes):
            return obj
        if isinstance(obj, (bytearray, memoryview)):
            return bytes(obj)
        raise TypeError(f"bytes serde expects bytes, got {type(obj).__name__}")

    def deserialize(self, data: bytes | None) -> Any:
        return data

    def serialize_many(self, objs: list[Any]) -> list[bytes | None]:
        serialize = self.serialize
        return [obj if type(obj) is bytes else serialize(obj) for obj in objs]

    def deserialize_many(self, datas: list[bytes | None]) -> list[Any]:
        return list(datas)


class StrSerde:
    """UTF-8 text.  Only str (or None) is written: str(obj) of a tuple or dict key would
    give text that no reader can tell from a real string key, so other types are a
    serialization error (the record goes to the error policy)."""

    name = "str"

    def serialize(self, obj: Any) -> bytes | None:
        if obj is None:
            return None
        if isinstance(obj, str):
            return obj.encode()
        raise TypeError(f"str serde expects str, got {type(obj).__name__}: use a json or int serde, or convert it")

    def deserialize(self, data: bytes | None) -> Any:
        return None if data is None else data.decode()

    def serialize_many(self, objs: list[Any]) -> list[bytes | None]:
        serialize = self.serialize
        return [obj.encode() if type(obj) is str else serialize(obj) for obj in objs]

    def deserialize_many(self, datas: list[bytes | None]) -> list[Any]:
        return [None if data is None else data.decode() for data in datas]


class JsonSerde:
    """JSON through orjson.

    serialize() returns a copy of orjson's output: orjson builds its result in
    a buffer of a few kilobytes and shrinks it in place, and with glibc's malloc
    each such result that stays alive keeps about 4 KiB resident.  Stores keep
    serialized values until the next commit, so 100k cached counts held 400 MiB.
    b"%b" % data is the cheapest exact-size copy (about 45 ns).

    orjson writes dataclasses itself; msgspec Structs and pydantic models go
    through json_default, which orjson calls only for types it does not know.
    """

    name = "json"

    def serialize(self, obj: Any) -> bytes | None:
        return None if obj is None else b"%b" % orjson.dumps(obj, json_default, orjson.OPT_NON_STR_KEYS)

    def deserialize(self, data: bytes | None) -> Any:
        return None if data is None else orjson.loads(data)

    def serialize_many(self, objs: list[Any]) -> list[bytes | None]:
        dumps, option = orjson.dumps, orjson.OPT_NON_STR_KEYS
        return [None if obj is None else b"%b" % dumps(obj, json_default, option) for obj in objs]

    def deserialize_many(self, datas: list[bytes | None]) -> list[Any]:
        loads = orjson.loads
        return [None if data is None else loads(data) for data in datas]


class IntSerde:
    """Big-endian signed 64-bit integers, byte-compatible with Kafka's LongSerializer."""

    name = "int"

    def serialize(self, obj: Any) -> bytes | None:
        return None if obj is None else struct.pack(">q", obj)

    def deserialize(self, data: bytes | None) -> Any:
        return None if data is None else struct.unpack(">q", data)[0]

    def serialize_many(self, objs: list[Any]) -> list[bytes | None]:
        pack = struct.Struct(">q").pack
        return [None if obj is None else pack(obj) for obj in objs]

    def deserialize_many(self, datas: list[bytes | None]) -> list[Any]:
        unpack = struct.Struct(">q").unpack
        return [None if data is None else unpack(data)[0] for data in datas]


class FloatSerde:
    """Big-endian IEEE 754 doubles, byte-compatible with Kafka's DoubleSerializer."""

    name = "float"

    def serialize(self, obj: Any) -> bytes | None:
        return None if obj is None else struct.pack(">d", obj)

    def deserialize(self, data: bytes | None) -> Any:
        return None if data is None else struct.unpack(">d", data)[0]

    def serialize_many(self, objs: list[Any]) -> list[bytes | None]:
        pack = struct.Struct(">d").pack
        return [None if obj is None else pack(obj) for obj in objs]

    def deserialize_many(self, datas: list[bytes | None]) -> list[Any]:
        unpack = struct.Struct(">d").unpack
        return [None if data is None else unpack(data)[0] for data in datas]


_NAMED: dict[str, type] = {
    "bytes": BytesSerde,
    "raw": BytesSerde,
    "str": StrSerde,
    "json": JsonSerde,
    "int": IntSerde,
    "float": FloatSerde,
}

SerdeLike = Serde | str | None


def resolve(serde: SerdeLike, default: str) -> Serde:
    """Turn a serde name or object into a serde; None means the default name."""
    if serde is None:
        serde = default
    if isinstance(serde, str):
        try:
            return _NAMED[serde]()
        except KeyError:
            raise ValueError(f"unknown serde {serde!r}; choose one of {sorted(_NAMED)} or pass an object") from None
    if isinstance(serde, type):
        # The class has serialize and deserialize too, as functions without self: every record would fail.
        raise TypeError(f"{serde.__name__} is a serde class; pass an instance, e.g. {serde.__name__}()")
    if isinstance(serde, Serde):
        return serde
    raise TypeError(f"a serde needs serialize() and deserialize(), got {serde!r}")


def resolve_typed(serde: SerdeLike, model: type | None, default: str, setting: str) -> Serde:
    """resolve(), and with a model type the serde for it: JSON by default, or the registry serde given."""
    if model is None:
        return resolve(serde, default)
    if serde is None or serde == "json":
        return ModelSerde(model, setting)
    resolved = resolve(serde, default)
    with_model = getattr(resolved, "with_model", None)
    if with_model is None:
        raise ValueError(f"{setting} needs the 'json' serde or a schema-registry serde, not {serde!r}")
    return with_model(model)


def bind(serde: Serde, topic: str, is_key: bool) -> Serde:
    """The serde to use for one topic's keys (is_key) or values."""
    binder = getattr(serde, "bind", None)
    return serde if binder is None else binder(topic, is_key)


def check_serdes(serdes: Iterable[Serde]) -> None:
    """Run each serde's check() once; the first failure becomes a StartupError that says what is missing."""
    seen: set[int] = set()
    for serde in serdes:
        check = getattr(serde, "check", None)
        if check is None or id(serde) in seen:
            continue
        seen.add(id(serde))
        try:
            check()
        except StreamsError as exc:
            raise StartupError(f"cannot start: {exc}") from exc
