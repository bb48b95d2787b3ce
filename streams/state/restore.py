"""Rebuilding a store from its changelog: pure helpers the runtime feeds with changelog records."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from streams.serdes import Serde
from streams.state.store import Change, CheckpointedStore
from streams.transport.base import RawRecord

log = logging.getLogger(__name__)

ChangelogRecord = tuple[int, bytes, bytes | None]
"""(offset, key, value); a None value is a tombstone."""


def needs_wipe(checkpoint: int | None, changelog_start_offset: int, changelog_end_offset: int | None = None) -> bool:
    """Whether the local store must be rebuilt from scratch rather than caught up.

    - No checkpoint: the contents cannot be tied to any changelog position.
    - Checkpoint before the changelog's start: retention or compaction removed
      records (deletes among them) that the store never saw.
    - Checkpoint past the changelog's end: the store belongs to some other
      changelog, e.g. the topic was deleted and recreated.
    """
    if checkpoint is None or checkpoint < changelog_start_offset:
        return True
    return changelog_end_offset is not None and checkpoint > changelog_end_offset


@dataclass(frozen=True, slots=True)
class RestoreProgress:
    """A snapshot of a restore: records written so far, offsets left to read, and the rate so far.

    remaining counts offsets, an upper bound on records: compaction and
    transaction markers leave gaps.
    """

    restored: int
    remaining: int
    rate: float  # records per second since the restore started

    @property
    def eta_seconds(self) -> float | None:
        if self.remaining == 0:
            return 0.0
        return self.remaining / self.rate if self.rate > 0 else None


class StoreRestorer:
    """Applies changelog records to a store in large atomic batches, each carrying its checkpoint.

    Every batch moves the checkpoint to the offset after its last record, so a
    restore interrupted at any point resumes where the last batch ended.
    """

    needs_wipe = staticmethod(needs_wipe)

    def __init__(
        self,
        store: CheckpointedStore,
        *,
        batch_size: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.store = store
        self.batch_size = batch_size
        self.restored = 0
        self.wiped = False
        self._clock = clock
        self._started = clock()
        self.position: int | None = store.checkpoint()

    def start_offset(self, changelog_start_offset: int, changelog_end_offset: int | None = None) -> int:
        """The changelog offset to read from, wiping the store first when it cannot be caught up."""
        if needs_wipe(self.position, changelog_start_offset, changelog_end_offset):
            self.store.wipe()
            self.wiped = True
            self.position = changelog_start_offset
        return self.position  # type: ignore[return-value]

    def apply(self, records: Iterable[ChangelogRecord]) -> int:
        """Write records (in offset order) to the store; returns how many were written."""
        write_batch = self.store.write_batch
        size = self.batch_size
        batch: list[Change] = []
        append = batch.append
        written = 0
        offset = -1
        for offset, key, value in records:
            append((key, value))
            if len(batch) >= size:
                write_batch(batch, offset + 1)
                written += len(batch)
                self._advance(len(batch), offset + 1)
                batch.clear()
        if batch:
            write_batch(batch, offset + 1)
            written += len(batch)
            self._advance(len(batch), offset + 1)
        return written

    def write(self, changes: Iterable[Change], position: int, count: int) -> None:
        """Write `count` changes as one batch whose checkpoint is `position`, the offset after the last.

        For callers that already hold records in batches: it skips apply()'s
        per-record regrouping, which costs as much as RocksDB's own write.
        """
        self.store.write_batch(changes, position)
        self._advance(count, position)

    def _advance(self, count: int, position: int) -> None:
        self.restored += count
        self.position = position

    def progress(self, end_offset: int) -> RestoreProgress:
        """Progress towards end_offset (the changelog's end when the restore began)."""
        elapsed = self._clock() - self._started
        position = self.position or 0
        return RestoreProgress(
            restored=self.restored,
            remaining=max(0, end_offset - position),
            rate=self.restored / elapsed if elapsed > 0 else 0.0,
        )


def readable_rows(records: list[RawRecord], key_serde: Serde, value_serde: Serde) -> list[RawRecord]:
    """The records whose key and value (a tombstone's None included) the serdes can read."""
    keys_of = getattr(key_serde, "deserialize_many", None)
    values_of = getattr(value_serde, "deserialize_many", None)
    if keys_of is not None and values_of is not None:
        try:
            keys_of([r.key for r in records])
            values_of([r.value for r in records])
        except Exception:
            pass  # some row is unreadable: the loop below finds it
        else:
            return records
    readable = []
    for r in records:
        try:
            key_serde.deserialize(r.key)
            value_serde.deserialize(r.value)
        except Exception as exc:
            log.warning("%s[%d]@%d is unreadable (%s: %s) and stays out of the table", r.topic, r.partition,
                        r.offset, type(exc).__name__, exc)
            continue
        readable.append(r)
    return readable
