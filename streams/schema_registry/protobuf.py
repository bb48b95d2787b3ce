"""Protobuf keys and values in the Confluent wire format, with message indexes.

After the magic byte and the schema id comes the path of the message type
within its .proto file (the "message indexes": [0] is the file's first message,
[1, 0] the first type nested in its second), then the protobuf bytes.  The
path is written as a zig-zag varint count followed by one zig-zag varint per
index, with the common [0] shortened to a single 0 byte.

The schema is a generated message class; its file is registered as a
base64-encoded FileDescriptorProto, the form Confluent's own clients register.
A file that imports others is registered with schema references, as
Confluent's clients do by default: each imported file first, as the latest
version of a subject named by its import path, except Google's well-known
types (google/protobuf/...), which registries know.  Without a message class,
records are read into message classes built from the writer's registered file
and the files its references name.  The `protobuf` package is needed only by
this serde (the `protobuf` extra).
"""

from __future__ import annotations

import base64
import importlib
from typing import Any

from streams.errors import SerializationError
from streams.schema_registry.client import RegisteredSchema, SchemaReference, SchemaRegistry
from streams.schema_registry.errors import InvalidSchemaError
from streams.schema_registry.serde import HEADER_BYTES, Decoder, Encoder, RegistrySerde


def encode_indexes(indexes: list[int]) -> bytes:
    """The message-index bytes of a path of message indexes."""
    if indexes == [0]:
        return b"\x00"
    return b"".join(_zigzag_varint(n) for n in (len(indexes), *indexes))


def decode_indexes(data: bytes, pos: int) -> tuple[list[int], int]:
    """The path of message indexes at data[pos:], and the position after it."""
    count, pos = _read_zigzag_varint(data, pos)
    if count == 0:
        return [0], pos
    indexes = []
    for _ in range(count):
        index, pos = _read_zigzag_varint(data, pos)
        indexes.append(index)
    return indexes, pos


def _zigzag_varint(n: int) -> bytes:
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _read_zigzag_varint(data: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if pos >= len(data):
            raise SerializationError("the protobuf message indexes end before the record does")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7


def _is_message_class(tp: Any) -> bool:
    return isinstance(tp, type) and hasattr(tp, "DESCRIPTOR") and hasattr(tp, "FromString")


def _path_of(file_proto: Any, full_name: str) -> list[int] | None:
    """The message indexes of the message named full_name in a FileDescriptorProto."""
    prefix = f"{file_proto.package}." if file_proto.package else ""

    def search(messages: Any, scope: str) -> list[int] | None:
        for i, message in enumerate(messages):
            name = f"{scope}{message.name}"
            if name == full_name:
                return [i]
            found = search(message.nested_type, f"{name}.")
            if found is not None:
                return [i, *found]
        return None

    return search(file_proto.message_type, prefix)


def _name_at(file_proto: Any, indexes: list[int]) -> str | None:
    """The full name of the message at a path of indexes, None if the path leads nowhere."""
    scope, messages = (f"{file_proto.package}." if file_proto.package else ""), file_proto.message_type
    name = None
    for index in indexes:
        if index >= len(messages):
            return None
        name = f"{scope}{messages[index].name}"
        scope, messages = f"{name}.", messages[index].nested_type
    return name


def _file_proto(schema: RegisteredSchema) -> Any:
    """The FileDescriptorProto of a registered schema in base64 form, None for one held as .proto text."""
    from google.protobuf import descriptor_pb2
    from google.protobuf.message import DecodeError

    proto = descriptor_pb2.FileDescriptorProto()
    try:
        proto.MergeFromString(base64.b64decode(schema.text, validate=True))
    except (ValueError, DecodeError):
        return None  # .proto text has spaces and newlines, which base64 has not
    return proto


class ProtobufSerde(RegistrySerde):
    """Protobuf through a schema registry.

    schema: a generated message class (values are its instances; dicts are converted), or None to
        read each record into a class built from its writer's registered file.
    The other arguments are those of AvroSerde.
    """

    schema_type = "PROTOBUF"

    def _prepare(self, schema: Any) -> None:
        self.message_class: Any = None
        if schema is None:
            return
        if not _is_message_class(schema):
            raise ValueError(f"schema must be a generated protobuf message class, got {schema!r}")
        descriptor = schema.DESCRIPTOR
        self.message_class = schema
        self.schema = RegisteredSchema(_base64(descriptor.file), self.schema_type)
        self.record_name = descriptor.full_name

    def _referencing(self, schema: RegisteredSchema) -> RegisteredSchema:
        return schema._replace(references=self._references(self.message_class.DESCRIPTOR.file))

    def _references(self, file: Any) -> tuple[SchemaReference, ...]:
        """References to the files `file` imports, each registered (or looked up) first, with its own."""
        references = []
        for imported in file.dependencies:
            if imported.name.startswith(WELL_KNOWN):
                continue
            schema = RegisteredSchema(_base64(imported), self.schema_type, self._references(imported))
            if self.auto_register:
                self.registry.register(imported.name, schema)
            references.append(SchemaReference(imported.name, imported.name,
                                              self.registry.version(imported.name, schema)))
        return tuple(references)

    def with_model(self, model: type) -> RegistrySerde:
        """value_type= with a message class: the same serde for that class."""
        if not _is_message_class(model):
            raise ValueError(f"value_type with ProtobufSerde must be a generated message class, got {model!r}")
        return type(self)(self.registry, model, **self._options)

    def _encoder(self, schema: RegisteredSchema) -> Encoder:
        if self.message_class is None:
            raise SerializationError("ProtobufSerde needs a message class to write with")
        message_class = self.message_class
        full_name = message_class.DESCRIPTOR.full_name
        file_proto = _file_proto(schema)
        if file_proto is None:
            raise InvalidSchemaError("the subject's schema is .proto text, which this serde cannot parse to find "
                                     f"{full_name} in it")
        indexes = _path_of(file_proto, full_name)
        if indexes is None:
            raise SerializationError(f"the subject's schema has no message {full_name}")
        header = encode_indexes(indexes)

        def encode(obj: Any) -> bytes:
            if not isinstance(obj, message_class):
                obj = self._from_dict(obj)
            return header + obj.SerializeToString()

        return encode

    def _from_dict(self, obj: Any) -> Any:
        from google.protobuf import json_format

        if not isinstance(obj, dict):
            raise SerializationError(f"expected a {self.message_class.DESCRIPTOR.full_name} or a dict, "
                                     f"got a {type(obj).__name__}")
        try:
            return json_format.ParseDict(obj, self.message_class())
        except json_format.ParseError as exc:
            raise SerializationError(f"value is not a valid {self.message_class.DESCRIPTOR.full_name}: {exc}") \
                from None

    def _decoder(self, schema_id: int, writer: RegisteredSchema) -> Decoder:
        from google.protobuf.message import DecodeError

        file_proto = _file_proto(writer)
        if file_proto is None and self.message_class is None:
            raise InvalidSchemaError(f"schema id {schema_id} is .proto text, which this serde cannot parse; "
                                     "give it the message class")
        classes: dict[tuple[int, ...], Any] = {}

        def class_at(indexes: list[int]) -> Any:
            found = classes.get(tuple(indexes))
            if found is not None:
                return found
            name = None if file_proto is None else _name_at(file_proto, indexes)
            if file_proto is not None and name is None:
                raise SerializationError(f"schema id {schema_id} has no message at indexes {indexes}")
            if self.message_class is not None:
                if name is not None and name != self.message_class.DESCRIPTOR.full_name:
                    raise SerializationError(f"the record is a {name} (schema id {schema_id}); this serde reads "
                                             f"{self.message_class.DESCRIPTOR.full_name}")
                found = self.message_class
            else:
                found = _class_from_file(self.registry, file_proto, writer.references, name)
            classes[tuple(indexes)] = found
            return found

        def decode(data: bytes) -> Any:
            indexes, pos = decode_indexes(data, HEADER_BYTES)
            message_class = class_at(indexes)
            try:
                return message_class.FromString(data[pos:])
            except DecodeError as exc:
                raise SerializationError(f"cannot read the Protobuf payload of schema id {schema_id}: {exc}") \
                    from None

        return decode


WELL_KNOWN = "google/protobuf/"


def _base64(file: Any) -> str:
    return base64.b64encode(file.serialized_pb).decode("ascii")


def _class_from_file(registry: SchemaRegistry, file_proto: Any, references: tuple[SchemaReference, ...],
                     full_name: str) -> Any:
    from google.protobuf import descriptor_pool, message_factory

    pool = descriptor_pool.DescriptorPool()
    _add_file(pool, registry, file_proto, references, set())
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(full_name))


def _add_file(pool: Any, registry: SchemaRegistry, file_proto: Any, references: tuple[SchemaReference, ...],
              added: set[str]) -> None:
    """Add `file_proto` to `pool` after the files it imports: referenced ones from the registry, well-known
    ones from the protobuf package."""
    from google.protobuf import descriptor_pb2

    by_name = {ref.name: ref for ref in references}
    for imported in file_proto.dependency:
        if imported in added:
            continue
        ref = by_name.get(imported)
        if ref is not None:
            schema = registry.subject_version(ref.subject, ref.version)
            imported_proto = _file_proto(schema)
            if imported_proto is None:
                raise InvalidSchemaError(f"reference {ref.name} (subject {ref.subject!r} version {ref.version}) is "
                                         ".proto text, which this serde cannot parse; give it the message class")
            _add_file(pool, registry, imported_proto, schema.references, added)
        elif imported.startswith(WELL_KNOWN):
            module = importlib.import_module(
                "google.protobuf." + imported[len(WELL_KNOWN):-len(".proto")].replace("/", ".") + "_pb2")
            imported_proto = descriptor_pb2.FileDescriptorProto.FromString(module.DESCRIPTOR.serialized_pb)
            _add_file(pool, registry, imported_proto, (), added)
        else:
            raise SerializationError(f"{file_proto.name} imports {imported}, which the writer's schema has no "
                                     "reference to; read it with its message class")
    pool.Add(file_proto)
    added.add(file_proto.name)
