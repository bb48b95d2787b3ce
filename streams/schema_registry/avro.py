"""Avro keys and values in the Confluent wire format, through a C codec or fastavro.

The schema is a model type (its Avro schema is derived: derive.py), an Avro
schema as JSON text, or a parsed one (a dict).  With a model, callbacks get
model instances; without one they get dicts.  The schema given is also the
reader schema: records written with an older version of the subject are
resolved to it by Avro's rules, so fields added since come back with their
defaults.

Records go through the C codec compiled for their schema (avro_plan.py) when
there is one and no schema resolution is needed; a record it cannot take (a
value of another type, a missing field that has a default, a malformed
payload) is redone with fastavro, whose bytes, value or error stand.
"""

from __future__ import annotations

import json
from io import BytesIO
from typing import Any

import fastavro

from streams.errors import SerializationError
from streams.schema_registry import avro_plan
from streams.schema_registry.client import RegisteredSchema
from streams.schema_registry.derive import avro_schema
from streams.schema_registry.errors import InvalidSchemaError
from streams.schema_registry.serde import HEADER_BYTES, Decoder, Encoder, RegistrySerde


class AvroSerde(RegistrySerde):
    """Avro through a schema registry.

    registry: a SchemaRegistry or the URL of one.
    schema: a model type, an Avro schema (JSON text or dict), or None to write with the subject's
        latest version (use_latest_version=True) and read with each record's own writer schema.
    subject_name_strategy: "topic_name" (default), "record_name", "topic_record_name" or a callable.
    subject: a fixed subject, instead of the strategy's.
    auto_register: register the schema if the subject lacks it (default); off, a missing schema is an error.
    use_latest_version: write with the subject's latest version instead of registering this schema.
    """

    schema_type = "AVRO"

    def _prepare(self, schema: Any) -> None:
        self._reader: dict | None = None
        if schema is None:
            return
        parsed = self._parse_schema(schema, avro_schema, "Avro schema JSON")
        try:
            self._reader = fastavro.parse_schema(parsed)
        except Exception as exc:  # fastavro raises several types for a bad schema
            raise ValueError(f"schema is not a valid Avro schema: {exc}") from None
        self.schema = RegisteredSchema(json.dumps(parsed, separators=(",", ":")), self.schema_type)
        self.record_name = _fullname(parsed)

    def _encoder(self, schema: RegisteredSchema) -> Encoder:
        writer = _parse(schema)
        parsed = json.loads(schema.text)
        name = _fullname(parsed) or "the schema"
        to_builtins = None if self.codec is None else self.codec.to_builtins
        write = fastavro.schemaless_writer

        def slow(value: Any) -> bytes:
            out = BytesIO()
            try:
                write(out, writer, value)
            except SerializationError:
                raise
            except Exception as exc:  # fastavro's errors for a value that does not fit vary by type
                raise SerializationError(f"value does not fit Avro schema {name}: {type(exc).__name__}: {exc}") \
                    from None
            return out.getvalue()

        plan = avro_plan.compiled(parsed)
        if plan is None:
            return slow if to_builtins is None else lambda obj: slow(to_builtins(obj))
        fast = avro_plan.encode

        def encode(obj: Any) -> bytes:
            value = obj if to_builtins is None else to_builtins(obj)
            try:
                return fast(plan, value)
            except ValueError:  # the codec's Unsupported: fastavro writes it or says why not
                return slow(value)

        return encode

    def _decoder(self, schema_id: int, writer: RegisteredSchema) -> Decoder:
        writer_schema = _parse(writer)
        reader = self._reader
        if reader is None and self.use_latest_version and self.topic is not None:
            reader = _parse(self.registry.latest(self.subject())[1])
        if reader == writer_schema:
            reader = None  # fastavro would compare the two on every record
        from_builtins = None if self.codec is None else self.codec.from_builtins
        read = fastavro.schemaless_reader

        def slow(data: bytes) -> Any:
            buffer = BytesIO(data)
            buffer.seek(HEADER_BYTES)
            try:
                return read(buffer, writer_schema, reader)
            except Exception as exc:  # truncated payloads and unresolvable schemas raise several types
                raise SerializationError(f"cannot read the Avro payload of schema id {schema_id}: "
                                         f"{type(exc).__name__}: {exc}") from None

        plan = None if reader is not None else avro_plan.compiled(json.loads(writer.text))
        if plan is None:
            return slow if from_builtins is None else lambda data: from_builtins(slow(data))
        fast = avro_plan.decode

        def decode(data: bytes) -> Any:
            try:
                value = fast(plan, data, HEADER_BYTES)
            except ValueError:  # the codec's Unsupported: fastavro reads it or says why not
                value = slow(data)
            return value if from_builtins is None else from_builtins(value)

        return decode


def _parse(schema: RegisteredSchema) -> dict:
    try:
        return fastavro.parse_schema(json.loads(schema.text))
    except Exception as exc:
        raise InvalidSchemaError(f"cannot parse the registry's Avro schema: {exc}") from None


def _fullname(schema: Any) -> str | None:
    if not isinstance(schema, dict) or "name" not in schema:
        return None
    name, namespace = schema["name"], schema.get("namespace")
    return name if "." in name or not namespace else f"{namespace}.{name}"
