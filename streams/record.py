"""The record that flows between operators.

A record keeps a reference to the raw input record it came from (its bytes and
coordinates), so that an error anywhere downstream can be reported against the
exact source offset (dead-letter queue) without re-reading Kafka.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streams.transport.base import RawRecord

Headers = tuple[tuple[str, bytes], ...]


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

    def with_value(self, value: Any) -> Record:
        return Record(self.key, value, self.timestamp, self.headers, self.origin)

    def with_key_value(self, key: Any, value: Any) -> Record:
        return Record(key, value, self.timestamp, self.headers, self.origin)

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
