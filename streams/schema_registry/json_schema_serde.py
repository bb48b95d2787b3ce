"""JSON keys and values checked against a JSON Schema, in the Confluent wire format.

The payload is plain JSON.  The schema is a model type (its JSON Schema comes
from msgspec or pydantic), a JSON Schema as text, or a parsed one (a dict).
Values are validated with `jsonschema` on both sides unless validate=False; a
value that does not validate is a SerializationError naming the failing path.
Validation is the costly part (tens of microseconds per record for a small
object): with a model type, whose own checks already run, it may be turned off.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import msgspec
import orjson

from streams.errors import SerializationError
from streams.schema_registry.client import RegisteredSchema, SchemaRegistry
from streams.schema_registry.derive import json_schema
from streams.schema_registry.errors import InvalidSchemaError
from streams.schema_registry.serde import HEADER_BYTES, Decoder, Encoder, RegistrySerde
from streams.schema_registry.subjects import SubjectNameStrategy


class JsonSchemaSerde(RegistrySerde):
    """JSON Schema through a schema registry.

    The arguments are those of AvroSerde, plus validate: check every value against the schema
    (the writer's when writing, the reader's when reading; default True).
    """

    schema_type = "JSON"

    def __init__(self, registry: SchemaRegistry | str, schema: Any = None, *,
                 subject_name_strategy: str | SubjectNameStrategy = "topic_name", subject: str | None = None,
                 auto_register: bool = True, use_latest_version: bool = False, validate: bool = True) -> None:
        self.validate = bool(validate)
        super().__init__(registry, schema, subject_name_strategy=subject_name_strategy, subject=subject,
                         auto_register=auto_register, use_latest_version=use_latest_version)
        self._options["validate"] = self.validate

    def _prepare(self, schema: Any) -> None:
        self._reader: dict | None = None
        if schema is None:
            return
        parsed = self._parse_schema(schema, json_schema, "JSON Schema text")
        try:
            jsonschema.validators.validator_for(parsed).check_schema(parsed)
        except jsonschema.SchemaError as exc:
            raise ValueError(f"schema is not a valid JSON Schema: {exc.message}") from None
        self._reader = parsed
        self.schema = RegisteredSchema(json.dumps(parsed, separators=(",", ":")), self.schema_type)
        self.record_name = parsed.get("title")

    def _encoder(self, schema: RegisteredSchema) -> Encoder:
        check = self._validator(_parse(schema)) if self.validate else None
        to_builtins = None if self.codec is None else self.codec.to_json_values
        encode_json = msgspec.json.Encoder().encode

        def encode(obj: Any) -> bytes:
            value = obj if to_builtins is None else to_builtins(obj)
            if check is not None:
                check(value)
            try:
                return encode_json(value)
            except (TypeError, ValueError) as exc:
                raise SerializationError(f"value cannot be written as JSON: {exc}") from None

        return encode

    def _decoder(self, schema_id: int, writer: RegisteredSchema) -> Decoder:
        reader = self._reader if self._reader is not None else _parse(writer)
        check = self._validator(reader) if self.validate else None
        from_builtins = None if self.codec is None else self.codec.from_builtins

        def decode(data: bytes) -> Any:
            try:
                value = orjson.loads(memoryview(data)[HEADER_BYTES:])
            except orjson.JSONDecodeError as exc:
                raise SerializationError(f"the payload of schema id {schema_id} is not JSON: {exc}") from None
            if check is not None:
                check(value)
            return value if from_builtins is None else from_builtins(value)

        return decode

    @staticmethod
    def _validator(schema: dict) -> Any:
        validator = jsonschema.validators.validator_for(schema)(schema)
        title = schema.get("title", "the schema")

        def check(value: Any) -> None:
            error = jsonschema.exceptions.best_match(validator.iter_errors(value))
            if error is not None:
                where = "/".join(map(str, error.absolute_path)) or "the value"
                raise SerializationError(f"value does not validate against JSON Schema {title} "
                                         f"at {where}: {error.message}")

        return check


def _parse(schema: RegisteredSchema) -> dict:
    try:
        return json.loads(schema.text)
    except ValueError as exc:
        raise InvalidSchemaError(f"cannot parse the registry's JSON Schema: {exc}") from None
