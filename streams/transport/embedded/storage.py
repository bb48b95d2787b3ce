"""Where the embedded broker keeps its logs: the Storage protocol, and the in-memory storage.

The broker holds all metadata (topics, offsets, epochs) in memory and tells
the storage about every change, so that a durable storage can load it again;
records themselves live only in the storage.
"""

from __future__ import annotations

import bisect
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from streams.transport.base import TopicPartition
from streams.transport.embedded.records import MARKER, StoredRecord
from streams.transport.embedded.topics import PartitionState, TopicState


@dataclass
class Snapshot:
    """Everything a storage remembers, as the broker loads it at start."""

    topics: dict[str, TopicState] = field(default_factory=dict)
    offsets: dict[str, dict[TopicPartition, int]] = field(default_factory=dict)
    epochs: dict[str, int] = field(default_factory=dict)
    pending: dict[TopicPartition, list[int]] = field(default_factory=dict)  # records of unfinished transactions


class Storage(Protocol):
    def load(self) -> Snapshot: ...

    def atomic(self) -> contextlib.AbstractContextManager[None]:
        """Everything written inside becomes durable together, or not at all."""
        ...

    def save_topic(self, topic: TopicState) -> None: ...

    def drop_topic(self, name: str) -> None:
        """Forget a topic's records, partition states and committed offsets."""
        ...

    def save_partition(self, tp: TopicPartition, state: PartitionState) -> None: ...

    def save_offsets(self, group: str, offsets: Mapping[TopicPartition, int]) -> None: ...

    def save_epoch(self, transactional_id: str, epoch: int) -> None: ...

    def append(self, tp: TopicPartition, records: Sequence[StoredRecord]) -> None: ...

    def read(self, tp: TopicPartition, start: int, stop: int, limit: int | None) -> list[StoredRecord]:
        """Up to `limit` records with start <= offset < stop, in offset order."""
        ...

    def count(self, tp: TopicPartition, start: int, stop: int) -> int: ...

    def set_kind(self, tp: TopicPartition, offsets: Sequence[int], kind: int) -> None: ...

    def set_horizon(self, tp: TopicPartition, offsets: Sequence[int], horizon: int) -> None: ...

    def remove(self, tp: TopicPartition, offsets: Sequence[int]) -> None: ...

    def first_at_or_after(self, tp: TopicPartition, timestamp: int) -> int | None:
        """The first offset of a non-control record whose timestamp is >= timestamp."""
        ...

    def close(self) -> None: ...


class MemoryLog:
    """One partition's records in offset order, with gaps where compaction removed some."""

    __slots__ = ("offsets", "records")

    def __init__(self) -> None:
        self.offsets: list[int] = []
        self.records: list[StoredRecord] = []

    def index(self, offset: int) -> int:
        return bisect.bisect_left(self.offsets, offset)

    def replace(self, offsets: Sequence[int], **changes: object) -> None:
        for offset in offsets:
            i = self.index(offset)
            if i < len(self.offsets) and self.offsets[i] == offset:
                self.records[i] = self.records[i]._replace(**changes)


class MemoryStorage:
    """Records in Python lists; nothing survives the process."""

    def __init__(self) -> None:
        self.logs: dict[TopicPartition, MemoryLog] = {}

    def load(self) -> Snapshot:
        return Snapshot()

    def atomic(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def save_topic(self, topic: TopicState) -> None:
        for partition in range(len(topic.partitions)):
            self.logs.setdefault(TopicPartition(topic.name, partition), MemoryLog())

    def drop_topic(self, name: str) -> None:
        for tp in [tp for tp in self.logs if tp.topic == name]:
            del self.logs[tp]

    def save_partition(self, tp: TopicPartition, state: PartitionState) -> None:
        pass

    def save_offsets(self, group: str, offsets: Mapping[TopicPartition, int]) -> None:
        pass

    def save_epoch(self, transactional_id: str, epoch: int) -> None:
        pass

    def append(self, tp: TopicPartition, records: Sequence[StoredRecord]) -> None:
        log = self.logs[tp]
        log.offsets.extend(r.offset for r in records)
        log.records.extend(records)

    def read(self, tp: TopicPartition, start: int, stop: int, limit: int | None) -> list[StoredRecord]:
        log = self.logs[tp]
        first = log.index(start)
        last = log.index(stop)
        if limit is not None:
            last = min(last, first + limit)
        return log.records[first:last]

    def count(self, tp: TopicPartition, start: int, stop: int) -> int:
        log = self.logs[tp]
        return max(0, log.index(stop) - log.index(start))

    def set_kind(self, tp: TopicPartition, offsets: Sequence[int], kind: int) -> None:
        self.logs[tp].replace(offsets, kind=kind)

    def set_horizon(self, tp: TopicPartition, offsets: Sequence[int], horizon: int) -> None:
        self.logs[tp].replace(offsets, horizon=horizon)

    def remove(self, tp: TopicPartition, offsets: Sequence[int]) -> None:
        log = self.logs[tp]
        gone = set(offsets)
        kept = [(o, r) for o, r in zip(log.offsets, log.records, strict=True) if o not in gone]
        log.offsets = [o for o, _ in kept]
        log.records = [r for _, r in kept]

    def first_at_or_after(self, tp: TopicPartition, timestamp: int) -> int | None:
        return next((r.offset for r in self.logs[tp].records if r.kind != MARKER and r.timestamp >= timestamp), None)

    def close(self) -> None:
        self.logs.clear()
