"""What can go wrong between a serde and the schema registry.

Each is a SerializationError, so a record that meets one goes to the error
policy (the DLQ by default) like any other record that cannot be read or
written; the message names the registry, the subject or the schema id.
"""

from __future__ import annotations

from streams.errors import SerializationError


class SchemaRegistryError(SerializationError):
    """The registry answered with an error, or a serde could not use its answer."""


class RegistryUnavailableError(SchemaRegistryError):
    """The registry did not answer: it is down, unreachable or too slow."""


class SchemaNotFoundError(SchemaRegistryError):
    """The registry knows no such schema id, subject or schema under a subject."""


class IncompatibleSchemaError(SchemaRegistryError):
    """The registry refused a new version of a subject under its compatibility rule."""


class InvalidSchemaError(SchemaRegistryError):
    """The registry, or the serde, cannot parse a schema."""


class WireFormatError(SerializationError):
    """The bytes are not in the Confluent wire format (magic byte 0, 4-byte schema id, payload)."""
