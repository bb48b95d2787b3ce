"""Serdes for schemas held in a schema registry, in the Confluent wire format.

The user-facing names are re-exported from `streams`; the modules are internal:

    client.py       SchemaRegistry, the cached synchronous REST client
    serde.py        wire format, subjects, writer and reader schema caches
    avro.py         AvroSerde (fastavro)
    json_schema_serde.py  JsonSchemaSerde (jsonschema)
    protobuf.py     ProtobufSerde, with message indexes (protobuf, optional)
    derive.py       Avro and JSON schemas derived from model types
    subjects.py     subject name strategies
    errors.py       what can go wrong, each a SerializationError
"""

from streams.schema_registry.avro import AvroSerde
from streams.schema_registry.client import SchemaRegistry
from streams.schema_registry.derive import avro_schema, json_schema
from streams.schema_registry.errors import (
    IncompatibleSchemaError,
    InvalidSchemaError,
    RegistryUnavailableError,
    SchemaNotFoundError,
    SchemaRegistryError,
    WireFormatError,
)
from streams.schema_registry.json_schema_serde import JsonSchemaSerde
from streams.schema_registry.protobuf import ProtobufSerde

__all__ = [
    "AvroSerde",
    "IncompatibleSchemaError",
    "InvalidSchemaError",
    "JsonSchemaSerde",
    "ProtobufSerde",
    "RegistryUnavailableError",
    "SchemaNotFoundError",
    "SchemaRegistry",
    "SchemaRegistryError",
    "WireFormatError",
    "avro_schema",
    "json_schema",
]
