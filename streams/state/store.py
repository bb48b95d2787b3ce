"""The key-value store contract shared by every state store implementation.

Keys and values are bytes and keys are ordered bytewise, so serializers that
preserve order (big-endian integers, fixed-width timestamps) make range scans
meaningful, e.g. for windows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol, runtime_checkable

Entry = tuple[bytes, bytes]
"""A stored key and its value."""

Change = tuple[bytes, bytes | None]
"""A pending write: a value to store, or None to delete the key."""


@runtime_checkable
class KeyValueStore(Protocol):
    """A sorted map of bytes to bytes, owned by one task."""

    name: str

    def get(self, key: bytes) -> bytes | None:
        """The key's value, or None when absent."""
        ...

    def put(self, key: bytes, value: bytes) -> None: ...

    def delete(self, key: bytes) -> None:
        """Remove the key; removing an absent key is not an error."""
        ...

    def put_all(self, items: Iterable[Change]) -> None:
        """Apply several writes; a None value deletes its key."""
        ...

    def range(self, start: bytes | None = None, end: bytes | None = None) -> Iterator[Entry]:
        """Entries with start <= key < end in key order; a None bound is open."""
        ...

    def prefix(self, prefix: bytes) -> Iterator[Entry]:
        """Entries whose key starts with prefix, in key order."""
        ...

    def items(self) -> Iterator[Entry]:
        """All entries in key order."""
        ...

    def approximate_count(self) -> int:
        """A cheap estimate of the number of keys (exact for in-memory stores)."""
        ...

    def flush(self) -> None:
        """Make written data durable where the implementation has a notion of it."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class CheckpointedStore(KeyValueStore, Protocol):
    """A store that records, atomically with its data, how far it has read its changelog.

    Keeping the checkpoint in the same atomic write as the data means a crash can
    never leave data and checkpoint disagreeing, so restore knows exactly where to
    resume.
    """

    def write_batch(self, items: Iterable[Change], checkpoint: int | None = None) -> None:
        """Apply writes (None deletes) and, unless checkpoint is None, store it, all at once."""
        ...

    def checkpoint(self) -> int | None:
        """The next changelog offset to read, or None if never recorded."""
        ...

    def wipe(self) -> None:
        """Drop every entry and the checkpoint, leaving an empty usable store."""
        ...


def prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with prefix; None if no such key exists.

    Used as the exclusive upper bound of a prefix scan: b"ab" -> b"ac", b"a\\xff" -> b"b",
    and b"" or all-0xff prefixes have no bound.
    """
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes((stripped[-1] + 1,))
