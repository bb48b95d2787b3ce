"""A state store held in process memory, for tests and for state small enough to rebuild on start."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from streams.state.sortedkeys import SortedKeys
from streams.state.store import Change, Entry, prefix_end

_MISSING = object()


class InMemoryStore:
    """A sorted bytes-to-bytes map: a dict for point access plus a lazily sorted key list for scans.

    Range scans see the keys present when the scan starts; a key deleted while
    the scan runs is skipped, and values are read as the scan reaches them.
    Nothing survives close(): the checkpoint is kept only so the store honours
    the same contract as durable stores.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._data: dict[bytes, bytes] = {}
        self._keys = SortedKeys()
        self._checkpoint: int | None = None

    def get(self, key: bytes) -> bytes | None:
        return self._data.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        data = self._data
        if key not in data:
            self._keys.add(key)
        data[key] = value

    def delete(self, key: bytes) -> None:
        if self._data.pop(key, _MISSING) is not _MISSING:
            self._keys.remove(key)

    def put_all(self, items: Iterable[Change]) -> None:
        data = self._data
        keys = self._keys
        for key, value in items:
            if value is None:
                if data.pop(key, _MISSING) is not _MISSING:
                    keys.remove(key)
            else:
                if key not in data:
                    keys.add(key)
                data[key] = value

    def range(self, start: bytes | None = None, end: bytes | None = None) -> Iterator[Entry]:
        # Take the key slice now, so the scan starts from the state at call time.
        return self._entries(self._keys.between(start, end))

    def prefix(self, prefix: bytes) -> Iterator[Entry]:
        return self.range(prefix, prefix_end(prefix))

    def items(self) -> Iterator[Entry]:
        return self.range(None, None)

    def _entries(self, keys: list[bytes]) -> Iterator[Entry]:
        data = self._data
        for key in keys:
            value = data.get(key)
            if value is not None:
                yield key, value

    def approximate_count(self) -> int:
        return len(self._data)

    def write_batch(self, items: Iterable[Change], checkpoint: int | None = None) -> None:
        """Apply writes and record the checkpoint; None leaves the previous checkpoint."""
        self.put_all(items)
        if checkpoint is not None:
            self._checkpoint = checkpoint

    def checkpoint(self) -> int | None:
        return self._checkpoint

    def wipe(self) -> None:
        self._data = {}
        self._keys.clear()
        self._checkpoint = None

    def flush(self) -> None:
        """Nothing to do: memory has no durable form."""

    def close(self) -> None:
        """Release the contents; an in-memory store cannot be reopened."""
        self.wipe()

    def __repr__(self) -> str:
        return f"InMemoryStore({self.name!r}, {len(self._data)} keys)"
