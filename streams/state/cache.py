"""A write cache in front of a task's store, holding the updates made since the last commit."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from streams.state.sortedkeys import SortedKeys
from streams.state.store import Change, CheckpointedStore, Entry, prefix_end

_MISSING = object()


class CachedStore:
    """Buffers writes between commits so the store sees each key once per commit, with its last value.

    Reads see pending writes first; deletes are pending None values that hide the
    store's entry.  commit() writes everything pending plus the changelog
    checkpoint in a single batch, which is what keeps data and checkpoint in step;
    discard() forgets pending writes when the transaction they belonged to aborts.
    flush() and close() never write pending changes: only commit() may, because
    only the committer knows the checkpoint they reach.

    put_local() writes (or, with None, deletes) a key that stays out of the
    changelog (logged() leaves it out): data the store derives again from logged
    data on restore.  It is committed, checkpointed and discarded like any other write.
    """

    def __init__(self, store: CheckpointedStore) -> None:
        self.store = store
        self.name = store.name
        self._cache: dict[bytes, bytes | None] = {}
        self._keys = SortedKeys()
        self._local: set[bytes] = set()  # pending keys whose last write is local-only

    # -- hot path -----------------------------------------------------------

    def get(self, key: bytes) -> bytes | None:
        value = self._cache.get(key, _MISSING)
        if value is _MISSING:
            return self.store.get(key)
        return value  # type: ignore[return-value]

    def put(self, key: bytes, value: bytes) -> None:
        cache = self._cache
        if key not in cache:
            self._keys.add(key)
        elif self._local:
            self._local.discard(key)
        cache[key] = value

    def delete(self, key: bytes) -> None:
        cache = self._cache
        if key not in cache:
            self._keys.add(key)
        elif self._local:
            self._local.discard(key)
        cache[key] = None

    def put_all(self, items: Iterable[Change]) -> None:
        cache = self._cache
        keys = self._keys
        local = self._local
        for key, value in items:
            if key not in cache:
                keys.add(key)
            elif local:
                local.discard(key)
            cache[key] = value

    def put_local(self, key: bytes, value: bytes | None) -> None:
        """Write (None deletes) a key in the store but not in its changelog."""
        cache = self._cache
        if key not in cache:
            self._keys.add(key)
        cache[key] = value
        self._local.add(key)

    # -- scans --------------------------------------------------------------

    def range(self, start: bytes | None = None, end: bytes | None = None) -> Iterator[Entry]:
        stored = self.store.range(start, end)
        pending_keys = self._keys.between(start, end)
        if not pending_keys:
            return stored
        cache = self._cache
        return _overlay([(key, cache[key]) for key in pending_keys], stored)

    def prefix(self, prefix: bytes) -> Iterator[Entry]:
        return self.range(prefix, prefix_end(prefix))

    def items(self) -> Iterator[Entry]:
        return self.range(None, None)

    def approximate_count(self) -> int:
        """The store's estimate adjusted by pending writes (pending puts may overwrite existing keys)."""
        deletes = sum(1 for value in self._cache.values() if value is None)
        puts = len(self._cache) - deletes
        return max(0, self.store.approximate_count() + puts - deletes)

    # -- commit protocol ----------------------------------------------------

    def dirty(self) -> list[Change]:
        """Pending writes, one per key with its last value (None for a delete)."""
        return list(self._cache.items())

    def logged(self) -> list[Change]:
        """The pending writes that go to the changelog: dirty() less the local-only ones."""
        local = self._local
        if not local:
            return list(self._cache.items())
        return [change for change in self._cache.items() if change[0] not in local]

    def dirty_count(self) -> int:
        return len(self._cache)

    def commit(self, checkpoint: int | None = None) -> None:
        """Write pending changes and the checkpoint in one batch, then start an empty cache.

        If the write fails the pending changes stay, so the commit can be retried.
        """
        self.store.write_batch(self._cache.items(), checkpoint)
        self._cache = {}
        self._keys.clear()
        self._local.clear()

    def discard(self) -> None:
        """Forget pending changes, e.g. because their transaction aborted."""
        self._cache = {}
        self._keys.clear()
        self._local.clear()

    def checkpoint(self) -> int | None:
        """The committed checkpoint of the underlying store."""
        return self.store.checkpoint()

    def flush(self) -> None:
        """Flush the store's committed data; pending changes wait for commit()."""
        self.store.flush()

    def close(self) -> None:
        """Close the store, dropping uncommitted changes."""
        self.discard()
        self.store.close()

    def __repr__(self) -> str:
        return f"CachedStore({self.store!r}, {len(self._cache)} pending)"


class CountingCachedStore(CachedStore):
    """A CachedStore that counts reads served from pending writes (hits) and from the store (misses).

    That is an addition per read, so the worker uses it only at the "debug"
    metrics recording level.
    """

    def __init__(self, store: CheckpointedStore) -> None:
        super().__init__(store)
        self.hits = 0
        self.misses = 0

    def get(self, key: bytes) -> bytes | None:
        value = self._cache.get(key, _MISSING)
        if value is _MISSING:
            self.misses += 1
            return self.store.get(key)
        self.hits += 1
        return value  # type: ignore[return-value]


def _overlay(pending: list[Change], stored: Iterator[Entry]) -> Iterator[Entry]:
    """Merge sorted pending changes over sorted stored entries: pending wins, None hides."""
    following = next(stored, None)
    for key, value in pending:
        while following is not None and following[0] < key:
            yield following
            following = next(stored, None)
        if following is not None and following[0] == key:
            following = next(stored, None)
        if value is not None:
            yield key, value
    if following is not None:
        yield following
        yield from stored
