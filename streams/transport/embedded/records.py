"""How the embedded broker stores a record, and how big Kafka would think it is."""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import NamedTuple

from streams.record import Headers
from streams.transport.base import RawRecord

# A record's kind decides who sees it: DATA everyone, PENDING (an open
# transaction's record) and ABORTED only read_uncommitted consumers, MARKER
# (a transaction's commit or abort control record) nobody; markers still take
# an offset, as Kafka's control batches do.
DATA, PENDING, ABORTED, MARKER = 0, 1, 2, 3

BATCH_OVERHEAD = 61  # bytes of a v2 record batch header
RECORD_OVERHEAD = 21  # upper bound of a record's own varints and attributes


class StoredRecord(NamedTuple):
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    kind: int = DATA
    horizon: int | None = None  # wall-clock ms after which compaction may drop a tombstone or marker

    def raw(self, topic: str, partition: int) -> RawRecord:
        return RawRecord(topic, partition, self.offset, self.timestamp, self.key, self.value, self.headers)


def record_size(key: bytes | None, value: bytes | None, headers: Headers) -> int:
    """A record's size in a batch, close to what Kafka checks against max.message.bytes."""
    size = RECORD_OVERHEAD + len(key or b"") + len(value or b"")
    for name, header_value in headers:
        size += 8 + len(name.encode()) + len(header_value or b"")
    return size


def normalize_headers(headers: Iterable[tuple[str, bytes]] | None) -> Headers:
    """Headers as a tuple of (str, bytes) pairs, whatever sequence they came in."""
    if not headers:
        return ()
    return tuple((str(name), value) for name, value in headers)


def encode_headers(headers: Headers) -> bytes | None:
    """A compact binary form for the SQLite log; None for no headers."""
    if not headers:
        return None
    parts = [struct.pack(">I", len(headers))]
    for name, value in headers:
        encoded = name.encode()
        parts.append(struct.pack(">H", len(encoded)))
        parts.append(encoded)
        if value is None:
            parts.append(struct.pack(">i", -1))
        else:
            parts.append(struct.pack(">i", len(value)))
            parts.append(bytes(value))
    return b"".join(parts)


def decode_headers(data: bytes | None) -> Headers:
    if not data:
        return ()
    (count,) = struct.unpack_from(">I", data, 0)
    pos = 4
    headers: list[tuple[str, bytes]] = []
    for _ in range(count):
        (name_length,) = struct.unpack_from(">H", data, pos)
        pos += 2
        name = data[pos:pos + name_length].decode()
        pos += name_length
        (value_length,) = struct.unpack_from(">i", data, pos)
        pos += 4
        if value_length < 0:
            headers.append((name, None))  # Kafka allows a header without a value
        else:
            headers.append((name, data[pos:pos + value_length]))
            pos += value_length
    return tuple(headers)
