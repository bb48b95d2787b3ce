"""The records of the framework: raw from the broker, deserialized between operators, serialized for it.

Record is the one that flows between operators.

A record keeps a reference to the raw input record it came from (its bytes and
coordinates), so that an error anywhere downstream can be reported against the
exact source offset (dead-letter queue) without re-reading Kafka.
"""

from __future__ import annotations

from typing import Any, NamedTuple

Headers = tuple[tuple[str, bytes], ...]


class TopicPartition(NamedTuple):
    """Equal to, and hashes like, aiokafka's TopicPartition."""

    topic: str
    partition: int


class RawRecord(NamedTuple):
    """A record as the broker returns it: bytes plus coordinates."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: Headers


class OutRecord(NamedTuple):
    """A serialized record bound for a known partition."""

    topic: str
    partition: int
    key: bytes | None
    value: bytes | None
    timestamp: int | None
    headers: Headers


class Record:
    """A deserialized key/value pair with its event time, headers and origin."""

    __slots__ = ("key", "value", "timestamp", "headers", "origin")

    def __init__(
        self,
        key: Any,
        value: Any,
        timestamp: int,
        headers: Headers = (),
        origin: RawRecord | None = None,
    ) -> None:
        self.key = key
        self.value = value
        self.timestamp = timestamp
        self.headers = headers
        self.origin = origin

    def __repr__(self) -> str:
        return f"Record(key={self.key!r}, value={self.value!r}, timestamp={self.timestamp})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record):
            return NotImplemented
        return (self.key, self.value, self.timestamp, self.headers) == (
            other.key,
            other.value,
            other.timestamp,
            other.headers,
        )

    __hash__ = None  # type: ignore[assignment]
