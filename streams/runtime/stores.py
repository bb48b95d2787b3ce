"""The stores of one task: open, cache, changelog and checkpoint.

A TaskStore joins a local store (RocksDB, or memory) with its write cache and
its changelog partition.  It implements the two store-facing steps of the
commit protocol (changelog records out; batch plus checkpoint in) and knows
where restore must start.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from operator import attrgetter
from pathlib import Path

from streams.state.cache import CachedStore, CountingCachedStore
from streams.state.memory import InMemoryStore
from streams.state.restore import readable_rows
from streams.state.rocksdb import RocksDBConfig, RocksDBStore
from streams.state.spec import StoreSpec
from streams.state.store import Change
from streams.transport.base import OutRecord, RawRecord, TopicPartition

log = logging.getLogger(__name__)
_key_value = attrgetter("key", "value")


class TaskStore:
    """One store of one task, as processors and the commit protocol see it."""

    def __init__(self, spec: StoreSpec, partition: int, path: Path | None,
                 config: RocksDBConfig | None = None, count_reads: bool = False) -> None:
        self.spec = spec
        self.config = config
        self.name = spec.name
        self.partition = partition
        self.path = path
        self.changelog = TopicPartition(spec.changelog_topic, partition) if spec.changelog_topic else None
        self.source_topic_changelog = bool(spec.options.get("source_topic"))
        self.rebuilt = False
        self.local = self._open()
        self.cache = (CountingCachedStore if count_reads else CachedStore)(self.local)
        self.checkpoint_before_restore = self.local.checkpoint()

    def _open(self) -> RocksDBStore | InMemoryStore:
        if self.path is None:
            return InMemoryStore(self.name)
        store, rebuilt = RocksDBStore.open_or_rebuild(self.name, self.path, self.config)
        self.rebuilt = self.rebuilt or rebuilt
        return store

    def wipe(self) -> None:
        """Drop all local state, so restore starts from the changelog's beginning."""
        self.cache.discard()
        self.local.wipe()

    # -- reads and writes, through the cache

    def get(self, key: bytes) -> bytes | None:
        return self.cache.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        self.cache.put(key, value)

    def delete(self, key: bytes) -> None:
        self.cache.delete(key)

    def put_local(self, key: bytes, value: bytes | None) -> None:
        """Write (None deletes) a key that stays out of the changelog; restore_changes() derives it again."""
        self.cache.put_local(key, value)

    def range(self, start: bytes | None = None, end: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        return self.cache.range(start, end)

    def prefix(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        return self.cache.prefix(prefix)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        return self.cache.items()

    def approximate_count(self) -> int:
        return self.cache.approximate_count()

    def restorable(self, records: list[RawRecord]) -> list[RawRecord]:
        """The changelog records this store takes on restore.

        A table read from its own topic takes only rows its serdes can read: the
        table's source sends any other row to the error policy, so the row never
        enters the store while processing, and restore must not put it there either.
        Internal changelogs hold what the store itself wrote.
        """
        if not self.source_topic_changelog:
            return records
        return readable_rows(records, self.spec.key_serde, self.spec.value_serde)

    def restore_changes(self, records: list[RawRecord]) -> Iterable[Change]:
        """The local writes that restoring changelog records makes.

        The record's own key and value, plus whatever the store keeps out of its
        changelog and derives from it (a window store's time index): the spec's
        "derive" option, a function from changes to changes.
        """
        changes = map(_key_value, records)
        derive = self.spec.options.get("derive")
        return changes if derive is None else derive(changes)

    # -- commit protocol

    def checkpoint(self) -> int | None:
        return self.local.checkpoint()

    def changelog_records(self, partition: int) -> list[OutRecord]:
        if self.changelog is None or self.source_topic_changelog:
            return []
        topic, new = self.changelog.topic, tuple.__new__  # tuple.__new__: no Python-level call per record
        return [new(OutRecord, (topic, partition, key, value, None, ())) for key, value in self.cache.logged()]

    def commit(self, written: Mapping[TopicPartition, int], consumed: Mapping[TopicPartition, int]) -> None:
        """Write the cache with the changelog offset it reached, in one batch."""
        if self.changelog is None:
            self.cache.commit(None)
            return
        if self.source_topic_changelog:
            next_offset = consumed.get(self.changelog)
        else:
            last = written.get(self.changelog)
            next_offset = None if last is None else last + 1
        self.cache.commit(next_offset if next_offset is not None else self.local.checkpoint())

    def discard(self) -> None:
        self.cache.discard()

    def close(self) -> None:
        self.local.close()

