"""Log compaction as Kafka's log cleaner does it, on the embedded broker's partitions.

Only the part of the log before the active segment (and before the first
record of an open transaction) is cleaned.  In it, a keyed record survives
only if it is its key's latest; aborted records go.  A tombstone (null value)
or transaction marker survives its first cleaning, which stamps it with a
horizon of delete.retention.ms, and goes at the first cleaning after that.
Offsets never change, and the log start offset stays where it is: a consumer
reading from the beginning simply finds gaps.
"""

from __future__ import annotations

from streams.transport.base import TopicPartition
from streams.transport.embedded.records import ABORTED, DATA, MARKER
from streams.transport.embedded.storage import Storage
from streams.transport.embedded.topics import PartitionState, TopicState


def cleanable_end(state: PartitionState) -> int:
    return min(state.segment_base, state.stable_offset())


def dirty_ratio(storage: Storage, tp: TopicPartition, state: PartitionState) -> float:
    """Share of the cleanable records not cleaned yet (Kafka measures bytes; this counts records)."""
    end = cleanable_end(state)
    if end <= state.clean_offset:
        return 0.0
    dirty = storage.count(tp, state.clean_offset, end)
    total = storage.count(tp, state.log_start, end)
    return dirty / total if total else 0.0


def roll(state: PartitionState) -> None:
    """Close the active segment, so that everything written so far becomes cleanable."""
    state.segment_base = state.next_offset
    state.segment_started_ms = 0
    state.segment_bytes = 0


def compact(storage: Storage, tp: TopicPartition, topic: TopicState, state: PartitionState, now_ms: int,
            expire_tombstones: bool = False) -> int:
    """Clean the partition's closed segments; returns how many records were removed."""
    end = cleanable_end(state)
    records = storage.read(tp, state.log_start, end, None)
    latest = {r.key: r.offset for r in records if r.kind == DATA and r.key is not None}
    dropped: list[int] = []
    stamped: list[int] = []
    for r in records:
        if r.kind == ABORTED or (r.kind == DATA and r.key is not None and latest[r.key] != r.offset):
            dropped.append(r.offset)
        elif r.kind == MARKER or (r.kind == DATA and r.value is None):
            if expire_tombstones or (r.horizon is not None and r.horizon <= now_ms):
                dropped.append(r.offset)
            elif r.horizon is None:
                stamped.append(r.offset)
    if dropped:
        storage.remove(tp, dropped)
    if stamped:
        storage.set_horizon(tp, stamped, now_ms + int(topic.number("delete.retention.ms")))
    state.clean_offset = max(state.clean_offset, end)
    return len(dropped)
