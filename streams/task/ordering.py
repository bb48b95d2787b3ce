"""Timestamp order across the partitions of one task, for operators whose results depend on it.

A windowed stream-stream join advances one stream time with records of both
inputs.  Processing all of one partition's batch before the other's would let
the newest records of one input make older records of the other look late; so
would processing one input ahead of the other across polls (a poll may return
many records of one partition and none of another, typically while catching up
on a backlog).

OrderedInputs buffers a task's partitions and releases records in timestamp
order across them, each partition's own order kept.  Records are released only
while every partition has something buffered: a partition that has run dry may
deliver an older record next.  After max_idle_ms of such waiting the buffered
records go anyway, the dry partition being taken as idle.  A run continues
while its records are no newer than the next partition's head, so inputs that
do not interleave stay whole batches.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from streams.transport.base import RawRecord, TopicPartition

Batch = tuple[TopicPartition, list[RawRecord]]


class OrderedInputs:
    def __init__(self, partitions: Iterable[TopicPartition], max_idle_ms: int = 0) -> None:
        self.max_idle_ms = max_idle_ms
        self._buffers: dict[TopicPartition, list[RawRecord]] = {tp: [] for tp in partitions}
        self._starts: dict[TopicPartition, int] = dict.fromkeys(self._buffers, 0)
        self._blocked_since: int | None = None

    @property
    def pending(self) -> bool:
        """Whether records wait in the buffers."""
        return any(len(raws) > self._starts[tp] for tp, raws in self._buffers.items())

    def add(self, batches: Mapping[TopicPartition, list[RawRecord]]) -> None:
        for tp, raws in batches.items():
            if raws:
                self._buffers.setdefault(tp, []).extend(raws)
                self._starts.setdefault(tp, 0)

    def take(self, now_ms: int) -> list[Batch]:
        """The records that may be processed now, as (partition, run) pairs in processing order."""
        buffers, starts = self._buffers, self._starts
        if all(len(raws) > starts[tp] for tp, raws in buffers.items()):
            self._blocked_since = None  # nothing holds the task back now
        drain = self.max_idle_ms <= 0 or (self._blocked_since is not None
                                          and now_ms - self._blocked_since >= self.max_idle_ms)
        runs: list[Batch] = []
        while True:
            heads = [tp for tp, raws in buffers.items() if len(raws) > starts[tp]]
            if not heads:
                self._blocked_since = None
                break
            if len(heads) < len(buffers) and not drain:
                if self._blocked_since is None:
                    self._blocked_since = now_ms
                break
            heads.sort(key=lambda tp: buffers[tp][starts[tp]].timestamp)
            tp = heads[0]
            raws, start = buffers[tp], starts[tp]
            limit = buffers[heads[1]][starts[heads[1]]].timestamp if len(heads) > 1 else None
            end = start + 1
            while end < len(raws) and (limit is None or raws[end].timestamp <= limit):
                end += 1
            runs.append((tp, raws[start:end] if start or end < len(raws) else raws))
            if end == len(raws):
                buffers[tp], starts[tp] = [], 0
            else:
                starts[tp] = end
        return runs
