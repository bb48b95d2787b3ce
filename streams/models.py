"""Typed keys and values: dataclasses, msgspec Structs and pydantic models.

A model type turns into a ModelCodec, which converts between instances and
JSON bytes or plain Python values (what Avro and JSON Schema serdes handle).
Dataclasses and Structs go through msgspec, which decodes JSON straight into
the model and checks each field's type on the way; bench/models.py measures it
against orjson plus the dataclass constructor, which checks nothing, and finds
it faster (docs/performance.md).  pydantic models use pydantic's own code;
pydantic is optional (the `pydantic` extra) and imported only if installed.

A value that is not a valid instance of its declared type is a
SerializationError naming the type and the offending field, so the record goes
to the DLQ with that message in its error header.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import sys
import uuid
from collections.abc import Callable
from typing import Any

import msgspec

from streams.errors import SerializationError

# Kept as Python objects by to_builtins: Avro's logical types take them as they are.
_NATIVE_TYPES = (datetime.datetime, datetime.date, datetime.time, decimal.Decimal, uuid.UUID, bytes, bytearray)
_VALIDATION_ERRORS: tuple[type[Exception], ...] = (msgspec.ValidationError, msgspec.DecodeError, TypeError,
                                                   ValueError)


def is_pydantic_model(tp: Any) -> bool:
    """True for a pydantic BaseModel subclass, without importing pydantic when it is not in use."""
    pydantic = sys.modules.get("pydantic")
    return pydantic is not None and isinstance(tp, type) and issubclass(tp, pydantic.BaseModel)


def is_model(tp: Any) -> bool:
    """True for the model types this module handles."""
    if not isinstance(tp, type):
        return False
    return dataclasses.is_dataclass(tp) or issubclass(tp, msgspec.Struct) or is_pydantic_model(tp)


def json_default(obj: Any) -> Any:
    """orjson's fallback for model instances it cannot write itself: Structs and pydantic models."""
    if isinstance(obj, msgspec.Struct):
        return msgspec.to_builtins(obj)
    if is_pydantic_model(type(obj)):
        return obj.model_dump(mode="json")
    raise TypeError(f"Type is not JSON serializable: {type(obj).__name__}")


class ModelCodec:
    """Conversions of one model type, each checking the value against the type."""

    def __init__(self, model: type, setting: str = "model") -> None:
        if not is_model(model):
            raise ValueError(f"{setting} must be a dataclass, a msgspec.Struct or a pydantic model, got {model!r}")
        self.model = model
        self.name = model.__qualname__
        if is_pydantic_model(model):
            self._from_json: Callable[[bytes], Any] = model.model_validate_json
            self._to_json: Callable[[Any], bytes] = lambda obj: obj.model_dump_json().encode()
            self._from_builtins: Callable[[Any], Any] = model.model_validate
            self._to_builtins: Callable[[Any], Any] = lambda obj: obj.model_dump()
            self._to_json_values: Callable[[Any], Any] = lambda obj: obj.model_dump(mode="json")
        else:
            self._from_json = msgspec.json.Decoder(model).decode
            self._to_json = msgspec.json.Encoder().encode
            self._from_builtins = lambda data: msgspec.convert(data, model)
            self._to_builtins = lambda obj: msgspec.to_builtins(obj, builtin_types=_NATIVE_TYPES)
            self._to_json_values = msgspec.to_builtins

    def from_json(self, data: bytes) -> Any:
        try:
            return self._from_json(data)
        except _VALIDATION_ERRORS as exc:
            raise self._invalid(exc) from None

    def to_json(self, obj: Any) -> bytes:
        try:
            return self._to_json(obj if type(obj) is self.model else self.coerce(obj))
        except _VALIDATION_ERRORS as exc:
            raise self._invalid(exc) from None

    def from_builtins(self, data: Any) -> Any:
        """A model instance from plain values (dicts, lists, strings, numbers)."""
        try:
            return self._from_builtins(data)
        except _VALIDATION_ERRORS as exc:
            raise self._invalid(exc) from None

    def to_builtins(self, obj: Any) -> Any:
        """Plain values of an instance (or of a dict that validates as one)."""
        try:
            return self._to_builtins(obj if type(obj) is self.model else self.coerce(obj))
        except _VALIDATION_ERRORS as exc:
            raise self._invalid(exc) from None

    def to_json_values(self, obj: Any) -> Any:
        """Like to_builtins, but only JSON's types: datetimes and UUIDs become strings."""
        try:
            return self._to_json_values(obj if type(obj) is self.model else self.coerce(obj))
        except _VALIDATION_ERRORS as exc:
            raise self._invalid(exc) from None

    def coerce(self, obj: Any) -> Any:
        """The value as an instance of the model: instances pass, anything else must validate as one."""
        if isinstance(obj, self.model):
            return obj
        if dataclasses.is_dataclass(obj) or isinstance(obj, msgspec.Struct):
            raise SerializationError(f"expected a {self.name}, got a {type(obj).__qualname__}")
        return self.from_builtins(obj)

    def _invalid(self, exc: Exception) -> SerializationError:
        errors = getattr(exc, "errors", None)
        if callable(errors) and is_pydantic_model(self.model):  # pydantic's own text spans several lines
            text = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in errors())
        else:
            text = str(exc)
        return SerializationError(f"value is not a valid {self.name}: {text}")


class ModelSerde:
    """JSON keys or values of one model type: callbacks get instances, sinks write the declared type."""

    typed = True  # the DSL drops it after operators that make new values (streams/dsl/stream.py)
    name = "json"

    def __init__(self, model: type, setting: str = "value_type") -> None:
        self.codec = ModelCodec(model, setting)

    def __repr__(self) -> str:
        return f"ModelSerde({self.codec.name})"

    def serialize(self, obj: Any) -> bytes | None:
        return None if obj is None else self.codec.to_json(obj)

    def deserialize(self, data: bytes | None) -> Any:
        return None if data is None else self.codec.from_json(data)

    def serialize_many(self, objs: list[Any]) -> list[bytes | None]:
        to_json = self.codec.to_json
        return [None if obj is None else to_json(obj) for obj in objs]

    def deserialize_many(self, datas: list[bytes | None]) -> list[Any]:
        from_json = self.codec.from_json
        return [None if data is None else from_json(data) for data in datas]
