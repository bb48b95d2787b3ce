"""Restore: bring a task's stores up to the end of their changelogs.

Before a task processes anything, each of its stores replays its changelog
partition from the store's checkpoint to the partition's end (the last stable
offset, since restore reads committed data only).  A store with no checkpoint,
or one whose checkpoint lies before the changelog's first offset (compaction or
retention removed what it would need), is wiped and rebuilt from the start.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter

from streams.runtime.stores import TaskStore
from streams.state.restore import RestoreProgress, StoreRestorer
from streams.transport.base import Consumer, RawRecord, TopicPartition

log = logging.getLogger(__name__)

POLL_RECORDS = 50_000
_key_value = attrgetter("key", "value")


@dataclass
class RestoreResult:
    store: str
    partition: TopicPartition
    start: int
    end: int
    restored: int
    seconds: float
    rebuilt: bool

    @property
    def rate(self) -> float:
        return self.restored / self.seconds if self.seconds > 0 else float(self.restored)


ProgressListener = Callable[[str, int, RestoreProgress], None]


async def restore_store(store: TaskStore, consumer: Consumer, progress_every_s: float = 2.0,
                        on_progress: ProgressListener | None = None,
                        restore_to: int | None = None) -> RestoreResult | None:
    """Replay the store's changelog partition into it; returns None for stores without one.

    restore_to stops the replay at that offset instead of the partition's end: a table
    read from its own topic is restored only as far as the task had processed that topic,
    and the task reads the rest as input.  Progress goes to the log every
    progress_every_s, and to on_progress (the CLI's progress bar) after every poll.
    """
    tp = store.changelog
    if tp is None:
        return None
    # Assigned before the offset lookups, because assigning makes the client fetch the
    # topic's metadata, which the lookups need: without it the first lookup fails and
    # backs off for retry_backoff_ms.  Paused until the start offset is known.
    consumer.assign([tp])
    consumer.pause([tp])
    beginnings, ends = await asyncio.gather(consumer.beginning_offsets([tp]), consumer.end_offsets([tp]))
    beginning, end = beginnings[tp], ends[tp]
    started = time.monotonic()
    restorer = StoreRestorer(store.local)
    start = restorer.start_offset(beginning, end)
    if restore_to is not None:
        end = max(start, min(end, restore_to))
    if restorer.wiped and store.checkpoint_before_restore is not None:
        log.warning("store %s[%d]: checkpoint %d is outside the changelog's offsets %d..%d; rebuilding",
                    store.name, tp.partition, store.checkpoint_before_restore, beginning, end)
    if start < end:
        consumer.seek(tp, start)
        consumer.resume([tp])
        last_report = started
        while await consumer.position(tp) < end:
            batches = await consumer.poll(200, POLL_RECORDS)
            records = batches.get(tp)
            if records:
                write_records(restorer, store, records, end)
            now = time.monotonic()
            if on_progress is not None and restorer.position < end:  # the finished state is reported once, below
                on_progress(store.name, tp.partition, restorer.progress(end))
            if now - last_report >= progress_every_s:
                last_report = now
                progress = restorer.progress(end)
                log.info("restoring %s[%d]: %d done, %d remaining, %.0f records/s", store.name, tp.partition,
                         progress.restored, progress.remaining, progress.rate)
        # Paused rather than unassigned: aiokafka answers an empty assignment with a
        # metadata request for every topic in the cluster, which the next restore waits for.
        consumer.pause([tp])
    if on_progress is not None:
        done = restorer.progress(end)
        on_progress(store.name, tp.partition, RestoreProgress(done.restored, 0, done.rate))
    if store.checkpoint() != end:
        store.local.write_batch((), end)  # transaction markers at the end carry no records
    result = RestoreResult(store.name, tp, start, end, restorer.restored, time.monotonic() - started,
                           restorer.wiped or store.rebuilt)
    if result.restored:
        log.info("restored %s[%d]: %d records in %.2fs (%.0f records/s)", store.name, tp.partition,
                 result.restored, result.seconds, result.rate)
    return result


def write_records(restorer: StoreRestorer, store: TaskStore, records: list[RawRecord], end: int | None = None) -> None:
    """Write polled changelog records in the restorer's batch size, each batch with its checkpoint.

    Only the records the store takes are written (TaskStore.restorable), but the
    checkpoint moves past every record read.
    """
    if end is not None and records[-1].offset >= end:  # records past the end read at the start are not ours
        records = [r for r in records if r.offset < end]
    size = restorer.batch_size
    for first in range(0, len(records), size):
        chunk = records[first:first + size]
        if chunk:
            rows = store.restorable(chunk)
            restorer.write(map(_key_value, rows), chunk[-1].offset + 1, len(rows))
