"""The embedded broker: topics, partitioned logs, group offsets and transactions of one process.

Clients of any event loop or thread share one broker per URL (see
streams.transport.embedded.registry).  Every method is synchronous and runs under one
lock, so each call is atomic; a durable storage makes each mutating call one
storage transaction as well.  Waiting is the clients' business: they wait on
`notifier`, which every change wakes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from aiokafka.errors import (
    CorruptRecordException,
    MessageSizeTooLargeError,
    UnknownTopicOrPartitionError,
)

from streams.errors import GenerationFencedError
from streams.partitioner import KeyPartitioner
from streams.transport.base import OutRecord, RawRecord, TopicInfo, TopicPartition, TopicSpec
from streams.transport.embedded import compaction
from streams.transport.embedded.errors import BrokerClosedError
from streams.transport.embedded.groups import GroupCoordinator
from streams.transport.embedded.notify import Notifier
from streams.transport.embedded.records import (
    ABORTED,
    BATCH_OVERHEAD,
    DATA,
    MARKER,
    PENDING,
    StoredRecord,
    normalize_headers,
    record_size,
)
from streams.transport.embedded.storage import Storage
from streams.transport.embedded.topics import PartitionState, TopicState, check_topic
from streams.transport.embedded.transactions import OpenTransaction, Transactions

VISIBLE_COMMITTED = frozenset({DATA})
VISIBLE_UNCOMMITTED = frozenset({DATA, PENDING, ABORTED})


class Entry(NamedTuple):
    """A record on its way into a log."""

    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple
    size: int


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


class EmbeddedBroker:
    """An in-process Kafka look-alike behind streams' transport protocols."""

    def __init__(self, url: str, storage: Storage, *, cleaner_backoff_s: float = 1.0) -> None:
        self.url = url
        self.storage = storage
        self.lock = threading.RLock()
        self.notifier = Notifier()
        self.now_ms = wall_clock_ms
        self.cleaner_backoff_s = cleaner_backoff_s
        self.closed = False
        snapshot = storage.load()
        self.topics: dict[str, TopicState] = snapshot.topics
        self.offsets: dict[str, dict[TopicPartition, int]] = snapshot.offsets
        self.transactions = Transactions(snapshot.epochs)
        self.groups = GroupCoordinator(self.partition_count, self.notifier.notify)
        self._partitioner = KeyPartitioner()
        self._next_clean = 0.0
        if snapshot.pending:
            self._abort_unfinished(snapshot.pending)

    def close(self) -> None:
        with self.lock:
            if not self.closed:
                self.closed = True
                self.storage.close()
        self.notifier.notify()

    def check_open(self) -> None:
        if self.closed:
            raise BrokerClosedError(f"the embedded broker {self.url} was closed")

    # -- topics

    def partition_count(self, topic: str) -> int | None:
        state = self.topics.get(topic)
        return len(state.partitions) if state else None

    def create_topics(self, specs: Iterable[TopicSpec]) -> None:
        """Create the topics that do not exist yet; raises the first invalid spec's error after the rest."""
        error: Exception | None = None
        with self.lock, self.storage.atomic():
            self.check_open()
            for spec in specs:
                if spec.name in self.topics:
                    continue
                config = {key: str(value) for key, value in spec.config.items()}
                try:
                    check_topic(spec.name, spec.partitions, config)
                except Exception as invalid:
                    error = error or invalid
                    continue
                topic = TopicState(spec.name, config, [PartitionState() for _ in range(spec.partitions)])
                self.topics[spec.name] = topic
                self.storage.save_topic(topic)
            self.groups.topics_changed()
        self.notifier.notify()
        if error is not None:
            raise error

    def delete_topics(self, names: Iterable[str]) -> None:
        with self.lock, self.storage.atomic():
            self.check_open()
            for name in names:
                if self.topics.pop(name, None) is None:
                    continue
                self.storage.drop_topic(name)
                self.transactions.forget_topic(name)
                for offsets in self.offsets.values():
                    for tp in [tp for tp in offsets if tp.topic == name]:
                        del offsets[tp]
            self.groups.topics_changed()
        self.notifier.notify()

    def describe_topics(self, names: Iterable[str]) -> dict[str, TopicInfo | None]:
        with self.lock:
            self.check_open()
            found = {name: self.topics.get(name) for name in names}
            return {name: TopicInfo(name, len(t.partitions), t.described()) if t else None
                    for name, t in found.items()}

    def _partition(self, tp: TopicPartition) -> tuple[TopicState, PartitionState]:
        topic = self.topics.get(tp.topic)
        if topic is None or not 0 <= tp.partition < len(topic.partitions):
            raise UnknownTopicOrPartitionError(f"{tp.topic}[{tp.partition}] does not exist on {self.url}")
        return topic, topic.partitions[tp.partition]

    # -- producing

    def append(self, records: Iterable[OutRecord], transaction: tuple[str, int] | None = None
               ) -> tuple[dict[TopicPartition, int], Exception | None]:
        """Write records, one batch per partition; returns the last offset per partition and the first error.

        A partition's batch is written whole or not at all; other partitions'
        batches are unaffected by its failure.  Records of a transaction are
        written at once (they take their offsets now) but stay invisible to
        read_committed consumers until the transaction commits.
        """
        with self.lock, self.storage.atomic():
            self.check_open()
            if transaction is not None:
                self.transactions.check(*transaction)
            batches = self._by_partition(records)
            written: dict[TopicPartition, int] = {}
            error: Exception | None = None
            now = self.now_ms()
            for tp, batch in batches.items():
                try:
                    topic, state = self._partition(tp)
                    entries = self._entries(tp, topic, batch, now)
                except Exception as invalid:
                    error = error or invalid
                    continue
                kind = DATA if transaction is None else PENDING
                first = state.next_offset
                written[tp] = self._write(tp, topic, state, entries, kind, now)
                if transaction is not None:
                    transactional_id = transaction[0]
                    self.transactions.current(transactional_id).records.setdefault(tp, []).extend(
                        range(first, state.next_offset))
                    state.open_transactions.setdefault(transactional_id, first)
        if written:
            self.notifier.notify()
        return written, error

    def _by_partition(self, records: Iterable[OutRecord]) -> dict[TopicPartition, list[OutRecord]]:
        """Group records by partition, placing those without one as Kafka's default partitioner would."""
        batches: dict[TopicPartition, list[OutRecord]] = {}
        for record in records:
            partition = record.partition
            if partition is None or partition < 0:
                count = self.partition_count(record.topic)
                partition = self._partitioner(record.key, count) if count else 0
            batches.setdefault(TopicPartition(record.topic, partition), []).append(record)
        return batches

    def _entries(self, tp: TopicPartition, topic: TopicState, batch: list[OutRecord], now: int) -> list[Entry]:
        limit = int(topic.number("max.message.bytes"))
        log_append_time = topic.setting("message.timestamp.type") == "LogAppendTime"
        entries = []
        for record in batch:
            headers = normalize_headers(record.headers)
            size = record_size(record.key, record.value, headers)
            if size + BATCH_OVERHEAD > limit:
                raise MessageSizeTooLargeError(
                    f"a record of {size} bytes is larger than {tp.topic}'s max.message.bytes={limit}")
            if record.key is None and topic.compacted:
                raise CorruptRecordException(f"compacted topic {tp.topic} cannot take a record without a key")
            timestamp = now if log_append_time or record.timestamp is None else record.timestamp
            entries.append(Entry(timestamp, record.key, record.value, headers, size))
        return entries

    def _write(self, tp: TopicPartition, topic: TopicState, state: PartitionState, entries: list[Entry],
               kind: int, now: int) -> int:
        """Append entries as one batch, rolling the active segment first when Kafka would; returns the last offset."""
        batch_bytes = BATCH_OVERHEAD + sum(e.size for e in entries)
        if state.segment_started_ms and (
            now - state.segment_started_ms >= topic.number("segment.ms")
            or state.segment_bytes + batch_bytes > topic.number("segment.bytes")
        ):
            compaction.roll(state)
        first = state.next_offset
        self.storage.append(tp, [StoredRecord(first + i, e.timestamp, e.key, e.value, e.headers, kind)
                                 for i, e in enumerate(entries)])
        state.next_offset += len(entries)
        state.segment_bytes += batch_bytes
        state.segment_started_ms = state.segment_started_ms or now
        self.storage.save_partition(tp, state)
        return state.next_offset - 1

    # -- consuming

    def fetch(self, tp: TopicPartition, position: int, limit: int, read_committed: bool
              ) -> tuple[list[RawRecord], int]:
        """Visible records from `position` on, and the position after them (past any invisible ones)."""
        with self.lock:
            self.check_open()
            _topic, state = self._partition(tp)
            stop = state.stable_offset() if read_committed else state.next_offset
            visible = VISIBLE_COMMITTED if read_committed else VISIBLE_UNCOMMITTED
            found: list[RawRecord] = []
            while position < stop and len(found) < limit:
                wanted = limit - len(found)
                chunk = self.storage.read(tp, position, stop, wanted)
                for stored in chunk:
                    position = stored.offset + 1
                    if stored.kind in visible:
                        found.append(stored.raw(tp.topic, tp.partition))
                        if len(found) == limit:
                            break
                if len(chunk) < wanted:
                    position = max(position, stop) if len(found) < limit else position
                    break
            return found, position

    def log_start(self, tp: TopicPartition) -> int:
        with self.lock:
            self.check_open()
            return self._partition(tp)[1].log_start

    def end_offset(self, tp: TopicPartition, read_committed: bool = False) -> int:
        """The high watermark, or for read_committed the last stable offset."""
        with self.lock:
            self.check_open()
            state = self._partition(tp)[1]
            return state.stable_offset() if read_committed else state.next_offset

    def offset_for_time(self, tp: TopicPartition, timestamp: int) -> int | None:
        with self.lock:
            self.check_open()
            self._partition(tp)
            return self.storage.first_at_or_after(tp, timestamp)

    # -- group offsets

    def committed(self, group_id: str, tp: TopicPartition) -> int | None:
        with self.lock:
            self.check_open()
            return self.offsets.get(group_id, {}).get(tp)

    def commit_offsets(self, group_id: str, offsets: Mapping[TopicPartition, int]) -> None:
        with self.lock, self.storage.atomic():
            self.check_open()
            self._commit_offsets(group_id, offsets)

    def _commit_offsets(self, group_id: str, offsets: Mapping[TopicPartition, int]) -> None:
        if offsets:
            self.offsets.setdefault(group_id, {}).update(offsets)
            self.storage.save_offsets(group_id, offsets)

    # -- transactions

    def init_transactions(self, transactional_id: str) -> int:
        """Start a producer's epoch: abort what an older producer with the same id left open, fence it."""
        with self.lock, self.storage.atomic():
            self.check_open()
            unfinished = self.transactions.open.pop(transactional_id, None)
            if unfinished is not None:
                self._finish(transactional_id, unfinished, commit=False)
            epoch = self.transactions.bump(transactional_id)
            self.storage.save_epoch(transactional_id, epoch)
        self.notifier.notify()
        return epoch

    def check_epoch(self, transactional_id: str, epoch: int) -> None:
        with self.lock:
            self.check_open()
            self.transactions.check(transactional_id, epoch)

    def add_offsets_to_transaction(self, transactional_id: str, epoch: int, group_id: str,
                                   offsets: Mapping[TopicPartition, int],
                                   member: tuple[str, int] | None = None) -> None:
        """Hold offsets in the open transaction; given (member id, generation), only from the current generation."""
        with self.lock:
            self.check_open()
            self.transactions.check(transactional_id, epoch)
            if member is not None and not self.groups.holds_generation(group_id, *member):
                raise GenerationFencedError(
                    f"offsets refused: member {member[0]!r} of group {group_id!r} is not in generation {member[1]}; "
                    "the group rebalanced without it, and its partitions may belong to another consumer now")
            self.transactions.current(transactional_id).offsets.setdefault(group_id, {}).update(offsets)

    def pending_offsets(self, group_id: str) -> set[TopicPartition]:
        """Partitions whose offsets for the group an open transaction holds: unstable until it ends."""
        with self.lock:
            return {tp for transaction in self.transactions.open.values()
                    for tp in transaction.offsets.get(group_id, {})}

    def end_transaction(self, transactional_id: str, epoch: int, commit: bool) -> None:
        """Commit or abort: records, markers and group offsets change in one step."""
        with self.lock, self.storage.atomic():
            self.check_open()
            self.transactions.check(transactional_id, epoch)
            transaction = self.transactions.open.pop(transactional_id, None)
            if transaction is not None:
                self._finish(transactional_id, transaction, commit)
        self.notifier.notify()

    def _finish(self, transactional_id: str, transaction: OpenTransaction, commit: bool) -> None:
        now = self.now_ms()
        for tp, offsets in transaction.records.items():
            topic, state = self._partition(tp)
            self.storage.set_kind(tp, offsets, DATA if commit else ABORTED)
            state.open_transactions.pop(transactional_id, None)
            self._write(tp, topic, state, [Entry(now, None, None, (), 0)], MARKER, now)
        if commit:
            for group_id, offsets in transaction.offsets.items():
                self._commit_offsets(group_id, offsets)

    def _abort_unfinished(self, pending: Mapping[TopicPartition, list[int]]) -> None:
        """Abort the transactions a previous process left open: nobody can finish them now."""
        now = self.now_ms()
        with self.lock, self.storage.atomic():
            for tp, offsets in pending.items():
                topic, state = self._partition(tp)
                self.storage.set_kind(tp, offsets, ABORTED)
                self._write(tp, topic, state, [Entry(now, None, None, (), 0)], MARKER, now)

    # -- compaction

    def compact(self, topics: Iterable[str] | None = None, *, expire_tombstones: bool = False) -> int:
        """Compact whole logs now, as if every active segment had rolled; returns the records removed.

        Tombstones stay for delete.retention.ms after the compaction that
        first saw them, as on Kafka, unless expire_tombstones drops them now.
        """
        with self.lock, self.storage.atomic():
            self.check_open()
            names = list(topics) if topics is not None else [n for n, t in self.topics.items() if t.compacted]
            removed = 0
            now = self.now_ms()
            for name in names:
                topic = self.topics.get(name)
                if topic is None:
                    raise UnknownTopicOrPartitionError(f"topic {name} does not exist on {self.url}")
                if not topic.compacted:
                    policy = topic.setting("cleanup.policy")
                    raise ValueError(f"topic {name} is not compacted (cleanup.policy={policy})")
                for partition, state in enumerate(topic.partitions):
                    tp = TopicPartition(name, partition)
                    compaction.roll(state)
                    removed += compaction.compact(self.storage, tp, topic, state, now, expire_tombstones)
                    self.storage.save_partition(tp, state)
            return removed

    def maybe_clean(self) -> None:
        """Run the periodic cleaner if it is due: compact partitions as dirty as min.cleanable.dirty.ratio."""
        now = time.monotonic()
        if now < self._next_clean or self.closed:
            return
        self._next_clean = now + self.cleaner_backoff_s
        with self.lock, self.storage.atomic():
            if self.closed:
                return
            now_ms = self.now_ms()
            for topic in self.topics.values():
                if not topic.compacted:
                    continue
                threshold = topic.number("min.cleanable.dirty.ratio")
                for partition, state in enumerate(topic.partitions):
                    tp = TopicPartition(topic.name, partition)
                    if compaction.cleanable_end(state) <= state.clean_offset:
                        continue
                    if compaction.dirty_ratio(self.storage, tp, state) >= threshold:
                        compaction.compact(self.storage, tp, topic, state, now_ms)
                        self.storage.save_partition(tp, state)
