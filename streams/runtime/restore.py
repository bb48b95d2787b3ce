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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from streams.runtime.stores import TaskStore
from streams.state.restore import RestoreProgress, StoreRestorer
from streams.transport.base import Consumer, RawRecord, TopicPartition

log = logging.getLogger(__name__)

POLL_RECORDS = 50_000


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
                        on_progress: ProgressListener | None = None) -> RestoreResult | None:
    """Replay one store's changelog partition into it; returns None for a store without one."""
    results = await restore_stores([store], consumer, progress_every_s, on_progress)
    return results[0] if results else None


@dataclass
class _Restoring:
    store: TaskStore
    restorer: StoreRestorer
    start: int
    end: int
    seconds: float = 0.0


async def restore_stores(stores: Iterable[TaskStore], consumer: Consumer, progress_every_s: float = 2.0,
                         on_progress: ProgressListener | None = None,
                         restore_to: Mapping[TopicPartition, int] | None = None) -> list[RestoreResult]:
    """Replay the stores' changelog partitions into them, all partitions at once; one result per logged store.

    The partitions are fetched together, so restoring many stores waits for one
    round of fetches rather than one per store in turn.  Progress goes to the log
    every progress_every_s, and to on_progress (the CLI's progress bar) after every poll.
    restore_to stops a partition's replay at that offset instead of its end: a table read
    from its own topic is restored only as far as the task had processed that topic, and
    the task reads the rest as input.
    """
    logged = [store for store in stores if store.changelog is not None]
    if not logged:
        return []
    tps = [store.changelog for store in logged]
    # Assigned before the offset lookups, because assigning makes the client fetch the
    # topics' metadata, which the lookups need: without it the first lookup fails and
    # backs off for retry_backoff_ms.  Paused until the start offsets are known.
    consumer.assign(tps)
    consumer.pause(tps)
    beginnings, ends = await asyncio.gather(consumer.beginning_offsets(tps), consumer.end_offsets(tps))
    started = time.monotonic()
    restoring: dict[TopicPartition, _Restoring] = {}
    for store, tp in zip(logged, tps, strict=True):
        restorer = StoreRestorer(store.local)
        beginning, end = beginnings[tp], ends[tp]
        start = restorer.start_offset(beginning, end)
        if restore_to is not None and tp in restore_to:
            end = max(start, min(end, restore_to[tp]))
        restoring[tp] = _Restoring(store, restorer, start, end)
        if restorer.wiped and store.checkpoint_before_restore is not None:
            log.warning("store %s[%d]: checkpoint %d is outside the changelog's offsets %d..%d; rebuilding",
                        store.name, tp.partition, store.checkpoint_before_restore, beginning, end)
    active = {tp for tp, state in restoring.items() if state.start < state.end}
    for tp in active:
        consumer.seek(tp, restoring[tp].start)
    consumer.resume(list(active))
    last_report = started
    while active:
        batches = await consumer.poll(200, POLL_RECORDS)
        for tp, records in batches.items():
            if tp in active and records:
                write_records(restoring[tp].restorer, restoring[tp].store, records, restoring[tp].end)
        now = time.monotonic()
        for tp in list(active):
            if await consumer.position(tp) >= restoring[tp].end:
                # Paused rather than unassigned: aiokafka answers an empty assignment with a
                # metadata request for every topic in the cluster, which the next restore waits for.
                consumer.pause([tp])
                active.discard(tp)
                restoring[tp].seconds = now - started
        report = now - last_report >= progress_every_s
        if report:
            last_report = now
        for tp, state in restoring.items():
            progress = state.restorer.progress(state.end)
            if on_progress is not None and tp in batches and state.restorer.position < state.end:
                on_progress(state.store.name, tp.partition, progress)
            if report and tp in active:
                log.info("restoring %s[%d]: %d done, %d remaining, %.0f records/s", state.store.name, tp.partition,
                         progress.restored, progress.remaining, progress.rate)
    results = []
    for tp, state in restoring.items():
        store, restorer = state.store, state.restorer
        if on_progress is not None:
            done = restorer.progress(state.end)
            on_progress(store.name, tp.partition, RestoreProgress(done.restored, 0, done.rate))
        if store.checkpoint() != state.end:
            store.local.write_batch((), state.end)  # transaction markers at the end carry no records
        result = RestoreResult(store.name, tp, state.start, state.end, restorer.restored, state.seconds,
                               restorer.wiped or store.rebuilt)
        log.info("restored %s[%d]: %d records in %.2fs (%.0f records/s)", store.name, tp.partition,
                 result.restored, result.seconds, result.rate)
        results.append(result)
    return results


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
            restorer.write(store.restore_changes(rows), chunk[-1].offset + 1, len(rows))
