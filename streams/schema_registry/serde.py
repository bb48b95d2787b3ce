"""What every schema-registry serde shares: the wire format, subjects and caches.

The Confluent wire format is a magic byte 0, the writer schema's id as a 4-byte
big-endian integer, then the payload in the schema's format.  A serde resolves
its writer schema's id once (registering the schema, looking it up, or taking
the subject's latest version) and builds one decoder per schema id it meets;
after that, converting a record touches no registry.

A serde is bound to a topic and to the key or value side by the framework
(bind(), called where the DSL pairs a serde with a topic), because the default
subject, <topic>-value, depends on both.  check() is called once when a worker
starts, so that a registry that is down stops the worker at once with a message
that says so.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any, ClassVar

from streams.errors import SerializationError
from streams.models import ModelCodec, is_model
from streams.schema_registry.client import RegisteredSchema, SchemaRegistry
from streams.schema_registry.errors import SchemaRegistryError, WireFormatError
from streams.schema_registry.subjects import NEEDS_RECORD_NAME, NEEDS_TOPIC, SubjectNameStrategy, strategy

MAGIC = b"\x00"
HEADER_BYTES = 5
Decoder = Callable[[bytes], Any]
Encoder = Callable[[Any], bytes]


def wire_prefix(schema_id: int) -> bytes:
    """The five bytes in front of every payload written with this schema id."""
    return MAGIC + schema_id.to_bytes(4, "big")


def schema_id_of(data: bytes) -> int:
    """The schema id of a record in the wire format; WireFormatError if it is not in it."""
    if len(data) < HEADER_BYTES or data[0] != 0:
        start = bytes(data[:1]).hex() or "nothing"
        raise WireFormatError(f"not in the schema registry wire format: {len(data)} bytes starting with "
                              f"{start} (expected magic byte 00 and a 4-byte schema id)")
    return int.from_bytes(data[1:HEADER_BYTES], "big")


class RegistrySerde:
    """Base of AvroSerde, JsonSchemaSerde and ProtobufSerde; a subclass supplies one schema format."""

    typed = True  # the DSL drops it after operators that make new values (streams/dsl/stream.py)

    schema_type: ClassVar[str]

    def __init__(self, registry: SchemaRegistry | str, schema: Any = None, *,
                 subject_name_strategy: str | SubjectNameStrategy = "topic_name", subject: str | None = None,
                 auto_register: bool = True, use_latest_version: bool = False) -> None:
        self.registry = registry if isinstance(registry, SchemaRegistry) else SchemaRegistry(registry)
        self._options = {"subject_name_strategy": subject_name_strategy, "subject": subject,
                         "auto_register": auto_register, "use_latest_version": use_latest_version}
        self.strategy = strategy(subject_name_strategy)
        self.fixed_subject = subject
        self.auto_register = bool(auto_register)
        self.use_latest_version = bool(use_latest_version)
        self.codec: ModelCodec | None = None
        self.schema: RegisteredSchema | None = None
        self.record_name: str | None = None
        self._prepare(schema)
        if self.schema is None and not self.use_latest_version and subject is None \
                and self.strategy in NEEDS_RECORD_NAME:
            raise ValueError(f"subject_name_strategy {subject_name_strategy!r} needs a schema with a record name")
        self.topic: str | None = None
        self.is_key = False
        self._prefix: bytes | None = None
        self._encode: Encoder | None = None
        self._decoders: dict[bytes, Decoder] = {}

    # -- what a format supplies

    def _prepare(self, schema: Any) -> None:
        """Set self.schema, self.codec and self.record_name from a model, a schema text or a parsed schema."""
        raise NotImplementedError

    def _parse_schema(self, schema: Any, derive: Callable[[type], Any], kind: str) -> Any:
        """A schema given as a model type (derived; the codec builds instances), JSON text or a parsed dict."""
        if is_model(schema):
            self.codec = ModelCodec(schema, "schema")
            return derive(schema)
        if isinstance(schema, str):
            try:
                return json.loads(schema)
            except ValueError as exc:
                raise ValueError(f"schema is not JSON: {exc}") from None
        if isinstance(schema, dict):
            return schema
        raise ValueError(f"schema must be a model type, {kind} or a dict, got {schema!r}")

    def _encoder(self, schema: RegisteredSchema) -> Encoder:
        """A function from a value to its payload in `schema`."""
        raise NotImplementedError

    def _decoder(self, schema_id: int, writer: RegisteredSchema) -> Decoder:
        """A function from a whole record in the wire format, written with `writer`, to its value."""
        raise NotImplementedError

    def _referencing(self, schema: RegisteredSchema) -> RegisteredSchema:
        """`schema` with the references to what it imports, registered first if auto_register (none here)."""
        return schema

    # -- the framework's hooks

    def bind(self, topic: str, is_key: bool) -> RegistrySerde:
        """This serde for the keys or values of one topic: the topic names its subject."""
        bound = copy.copy(self)
        bound.topic, bound.is_key = topic, is_key
        bound._prefix = bound._encode = None
        bound._decoders = {}
        return bound

    def with_model(self, model: type) -> RegistrySerde:
        """The same serde for values of a model type, with the schema derived from the model."""
        return type(self)(self.registry, model, **self._options)

    def check(self) -> None:
        """Raise RegistryUnavailableError unless the registry answers."""
        self.registry.check()

    def subject(self) -> str:
        """The subject this serde writes under, by its strategy."""
        if self.fixed_subject is not None:
            return self.fixed_subject
        if self.topic is None and self.strategy in NEEDS_TOPIC:
            raise SerializationError(
                f"{type(self).__name__} is not bound to a topic, and its subject name strategy needs one: use it "
                "as the serde of a stream, table or sink, or pass subject=...")
        return self.strategy(self.topic, self.is_key, self.record_name)

    # -- Serde

    def serialize(self, obj: Any) -> bytes | None:
        if obj is None:
            return None
        if self._encode is None:
            self._resolve_writer()
        return self._prefix + self._encode(obj)  # type: ignore[operator, misc]

    def serialize_many(self, objs: list[Any]) -> list[bytes | None]:
        if self._encode is None:
            if all(obj is None for obj in objs):
                return [None] * len(objs)
            self._resolve_writer()
        prefix, encode = self._prefix, self._encode
        return [None if obj is None else prefix + encode(obj) for obj in objs]  # type: ignore[operator, misc]

    def deserialize(self, data: bytes | None) -> Any:
        if data is None:
            return None
        decode = self._decoders.get(data[1:HEADER_BYTES]) if data[:1] == MAGIC else None
        if decode is None:
            decode = self._decoder_for(data)
        return decode(data)

    def deserialize_many(self, datas: list[bytes | None]) -> list[Any]:
        known = self._decoders.get
        out = []
        append = out.append
        for data in datas:
            if data is None:
                append(None)
                continue
            decode = known(data[1:HEADER_BYTES]) if data[:1] == MAGIC else None
            append((decode or self._decoder_for(data))(data))
        return out

    # -- resolution, once per subject or schema id

    def _resolve_writer(self) -> None:
        subject = self.subject()
        if self.use_latest_version:
            schema_id, schema = self.registry.latest(subject)
        elif self.schema is None:
            raise SerializationError(f"{type(self).__name__} has no schema to write with: give it a schema "
                                     "or a model, or use_latest_version=True")
        else:
            schema = self._referencing(self.schema)
            register = self.registry.register if self.auto_register else self.registry.lookup
            schema_id = register(subject, schema)
        self._check_type(schema_id, schema)
        self._encode = self._encoder(schema)
        self._prefix = wire_prefix(schema_id)

    def _decoder_for(self, data: bytes) -> Decoder:
        schema_id = schema_id_of(data)
        writer = self.registry.schema(schema_id)
        self._check_type(schema_id, writer)
        decode = self._decoders[data[1:HEADER_BYTES]] = self._decoder(schema_id, writer)
        return decode

    def _check_type(self, schema_id: int, schema: RegisteredSchema) -> None:
        if schema.schema_type != self.schema_type:
            raise SchemaRegistryError(f"schema id {schema_id} is a {schema.schema_type} schema; "
                                      f"{type(self).__name__} reads and writes {self.schema_type}")
