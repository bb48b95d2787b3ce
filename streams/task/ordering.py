"""Event-time order across the partitions of a task, and across the tasks of a poll.

A task's partitions deliver their records in offset order, each in its own
event-time order; whoever consumes the task's output sees them interleaved in
the order the task processes them.  Processing all of one partition's batch
before the next one's hands a downstream operator one partition's whole time
range, then the next one's, and everything after the first looks late:

- Within a task, TaskInputs releases records in event-time order across its
  partitions.  A windowed stream-stream join advances one stream time with
  records of both inputs, and a stream-table or table-table join looks rows up
  as of processing time, so the interleaving decides which row a record meets:
  the task of a join orders its inputs exactly, as Kafka Streams' tasks do, and
  also *holds* records back while one of its partitions has none buffered: that
  partition may deliver an older record next (a poll may bring many records of
  one input and none of the other, typically while catching up on a backlog),
  unless the consumer has read it to the end the broker reported (caught up),
  which is all Kafka Streams waits for by default.  After max_idle_ms of waiting
  the buffered records go anyway, the dry partition being taken as idle.
- Across tasks, what the tasks of a poll write to repartition topics is merged
  by event time before it is sent (in_send_order), so the tasks downstream get
  every upstream task's records nearly in event-time order.

Times are event times, as the sources read them (the timestamp extractor's, if
the stream has one), not the Kafka timestamps of the raw records.  So records
are deserialized before they are ordered: TaskInputs reads each partition a
chunk at a time, just ahead of where it releases records.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from streams.gcpause import gc_paused
from streams.record import Record
from streams.transport.base import OutRecord, RawRecord, TopicPartition

if TYPE_CHECKING:
    from streams.task.task import Task

Run = tuple[TopicPartition, list[Record], list[RawRecord] | None]
Reader = Callable[[TopicPartition, list[RawRecord]], list[Record]]

SLACK_MS = 500
"""How far past the next partition's oldest record a run of a task that does not
hold records back may go.  Each run is a separate pass through the processors,
and partitions whose records interleave closely would otherwise make runs of a
record or two; joins order their inputs exactly."""

CHUNK_RECORDS = 256
"""The most records read, and released, together.  A poll brings thousands per
partition; in pieces this size each record's objects are still in the CPU's
caches when the next processor reads them (measured: about 8% less time per
record than whole polls, and the same below 128 or up to 2000)."""


class _Partition:
    """A partition's records: raw ones not read yet, then read ones not released yet."""

    __slots__ = ("raws", "next_raw", "records", "next_record", "end", "reported", "chunk", "chunk_pos", "orphans")

    def __init__(self) -> None:
        self.raws: list[RawRecord] = []
        self.next_raw = 0
        self.records: list[Record] = []
        self.next_record = 0
        self.end: int | None = None  # the offset after the last record added
        self.reported: int | None = None  # the position advanced() last gave
        # With spans: the raw records of the last chunk read, how many of them runs covered, and
        # chunks of which the reader could read nothing, still to be handed to the other readers.
        self.chunk: list[RawRecord] = []
        self.chunk_pos = 0
        self.orphans: list[RawRecord] = []


class TaskInputs:
    """A task's buffered input, released in event-time order across its partitions.

    read gives the records of a chunk of raw records, with the times that order
    them.  hold: keep records back while a partition has none buffered (windowed
    joins), up to max_idle_ms.  slack: how far a run may go past the next
    partition's oldest record (0 keeps exact order).  spans: also give each run
    the raw records it covers (unreadable ones included), for other readers of
    the same topic.
    """

    def __init__(self, partitions: Iterable[TopicPartition], read: Reader, *, hold: bool = False,
                 max_idle_ms: int = 0, slack_ms: int = SLACK_MS, run_records: int = CHUNK_RECORDS,
                 spans: bool = False) -> None:
        self._partitions = {tp: _Partition() for tp in partitions}
        self._read = read
        self.spans = spans
        self.hold = hold
        self.max_idle_ms = max_idle_ms
        self.slack_ms = 0 if hold else slack_ms
        self.run_records = run_records
        self._blocked_since: int | None = None

    def add(self, tp: TopicPartition, raws: list[RawRecord]) -> None:
        if not raws:
            return
        part = self._partitions.get(tp)
        if part is None:
            part = self._partitions[tp] = _Partition()
        if part.reported is None:
            part.reported = raws[0].offset  # nothing before it is this task's to report
        # New lists rather than in-place changes: the caller's batch is not ours to modify.
        part.raws = part.raws[part.next_raw:] + raws if part.next_raw < len(part.raws) else raws
        part.next_raw = 0
        part.end = raws[-1].offset + 1

    @property
    def pending(self) -> bool:
        """Whether records wait, read or not."""
        return any(p.next_record < len(p.records) or p.next_raw < len(p.raws) for p in self._partitions.values())

    def position(self, tp: TopicPartition) -> int | None:
        """The offset of tp's next record to release: everything before it is done (released or unreadable)."""
        part = self._partitions.get(tp)
        if part is None:
            return None
        if part.next_record < len(part.records):
            origin = part.records[part.next_record].origin
            if origin is not None:
                return origin.offset
        if part.next_raw < len(part.raws):
            return part.raws[part.next_raw].offset
        return part.end

    def advanced(self) -> dict[TopicPartition, int]:
        """The positions that moved since the last call (or since their first records were added)."""
        moved = {}
        for tp, part in self._partitions.items():
            offset = self.position(tp)
            if offset is not None and offset != part.reported:
                part.reported = moved[tp] = offset
        return moved

    def _head(self, tp: TopicPartition, part: _Partition) -> Record | None:
        """The next record to release from tp, reading the next chunk of raw records when needed."""
        while part.next_record >= len(part.records):
            if part.next_raw >= len(part.raws):
                return None
            chunk = part.raws[part.next_raw:part.next_raw + self.run_records]
            part.next_raw += len(chunk)
            if part.next_raw == len(part.raws):
                part.raws, part.next_raw = [], 0
            part.records, part.next_record = self._read(tp, chunk), 0
            if self.spans:
                if part.records:
                    part.chunk, part.chunk_pos = chunk, 0
                else:
                    part.orphans.extend(chunk)
        return part.records[part.next_record]

    def _heads(self, now_ms: int, caught_up: Collection[TopicPartition]
               ) -> list[tuple[int, TopicPartition, _Partition]] | None:
        """(time, partition) of every partition's next record, oldest first; None while holding back.

        A dry partition in caught_up, read to its end, holds nothing back.
        """
        heads = []
        for tp, part in self._partitions.items():
            if part.next_record < len(part.records):  # the common case, without a call
                heads.append((part.records[part.next_record].timestamp, tp, part))
                continue
            record = self._head(tp, part)
            if record is not None:
                heads.append((record.timestamp, tp, part))
        if not heads:
            self._blocked_since = None
            return None
        if self.hold:
            if len(heads) == len(self._partitions) or all(
                    tp in caught_up for tp, part in self._partitions.items() if part.next_record >= len(part.records)):
                self._blocked_since = None  # nothing holds the task back now
            elif self.max_idle_ms > 0:
                if self._blocked_since is None:
                    self._blocked_since = now_ms
                if now_ms - self._blocked_since < self.max_idle_ms:
                    return None
        if len(heads) > 1:
            heads.sort(key=_time)
        return heads

    def take(self, now_ms: int, caught_up: Collection[TopicPartition] = ()) -> Iterator[Run]:
        """Runs of records that may be processed now, in processing order (caught_up: see _heads).

        A run is one partition's records, oldest partition first, until they pass
        the next partition's oldest record (+ slack).  Lazily: each chunk is read
        only once the run before it has been processed, while its records are
        still in the CPU's caches.
        """
        while True:
            heads = self._heads(now_ms, caught_up)
            if self.spans:
                for orphan_tp, orphan in self._partitions.items():
                    if orphan.orphans:
                        raws, orphan.orphans = orphan.orphans, []
                        yield orphan_tp, [], raws
            if heads is None:
                return
            _first, tp, part = heads[0]
            records, start = part.records, part.next_record
            end = len(records)
            if len(heads) > 1:
                bound = heads[1][0] + self.slack_ms
                end = start + 1
                while end < len(records) and records[end].timestamp <= bound:
                    end += 1
            part.next_record = end
            yield tp, records if start == 0 and end == len(records) else records[start:end], self._span(part, end)

    def _span(self, part: _Partition, end: int) -> list[RawRecord] | None:
        """The raw records a run up to records[end] covers: up to that record's, or to the chunk's end."""
        if not self.spans:
            return None
        chunk, start = part.chunk, part.chunk_pos
        stop = len(chunk)
        if end < len(part.records):
            following, stop = part.records[end].origin, start
            while chunk[stop] is not following:
                stop += 1
        part.chunk_pos = stop
        return chunk[start:stop]


def _time(head: tuple[int, TopicPartition, _Partition]) -> int:
    return head[0]


def process_poll(work: Sequence[tuple[Task, Mapping[TopicPartition, list[RawRecord]]]]
                 ) -> list[tuple[Task, list[OutRecord]]]:
    """Run a poll's records through their tasks, each its whole batch; returns each task's output."""
    outputs = []
    with gc_paused():
        for task, batches in work:
            task.process(batches)
            outputs.append((task, task.take_output()))
    return outputs


def in_send_order(outputs: Sequence[tuple[Task, list[OutRecord]]]) -> list[OutRecord]:
    """The tasks' output records in the order to send them on one producer.

    What the tasks write to repartition topics is merged by event time, so that
    the tasks downstream receive every upstream task's records nearly in
    event-time order, rather than one task's whole batch after another's (a
    windowed operator downstream would find most of them late).  A record sorts
    by the newest time its task's output has reached with it (its running
    maximum), which never decreases along one task's output: the stable sort
    interleaves the tasks by their progress and never reorders one task's
    records (a key's updates stay in order even when their times do not).  The
    other tasks' output goes first, as it is: records of different partitions
    have no order in Kafka.
    """
    ordered: list = []
    feeding = []
    for task, output in outputs:
        if output:
            (feeding if task.repartition_topics else ordered).append((task.repartition_topics, output))
    ordered = [record for _topics, output in ordered for record in output]
    if len(feeding) < 2:
        return ordered + [record for _topics, output in feeding for record in output]
    keys: list[int] = []
    records: list[OutRecord] = []
    for topics, output in feeding:
        newest = -(1 << 63)
        for record in output:
            ts = record.timestamp
            if ts is not None and ts > newest and record.topic in topics:  # not a DLQ record's Kafka time
                newest = ts
            keys.append(newest)
        records.extend(output)
    ordered.extend([records[i] for i in sorted(range(len(records)), key=keys.__getitem__)])
    return ordered
