"""Timestamp order across the partitions of one task, for operators whose results depend on it.

A windowed stream-stream join advances one stream time with records of both
inputs: processing all of one partition's batch before the other's would let
the newest records of one input make the older records of the other look late.
time_ordered_runs() cuts the batches of one poll into runs and orders them so
that records are processed in timestamp order across partitions, each
partition's own order kept.  A run continues while its records are no newer
than the next partition's head, so inputs that do not interleave stay whole
batches.
"""

from __future__ import annotations

from collections.abc import Mapping

from streams.transport.base import RawRecord, TopicPartition

Batch = tuple[TopicPartition, list[RawRecord]]


def time_ordered_runs(batches: Mapping[TopicPartition, list[RawRecord]]) -> list[Batch]:
    """The records of `batches` as (partition, run) pairs in processing order."""
    heads = [[tp, raws, 0] for tp, raws in batches.items() if raws]
    if len(heads) < 2:
        return [(tp, raws) for tp, raws, _ in heads]
    runs = []
    while heads:
        heads.sort(key=lambda head: head[1][head[2]].timestamp)
        tp, raws, start = heads[0]
        limit = heads[1][1][heads[1][2]].timestamp if len(heads) > 1 else None
        end = start + 1
        while end < len(raws) and (limit is None or raws[end].timestamp <= limit):
            end += 1
        runs.append((tp, raws[start:end] if start or end < len(raws) else raws))
        if end == len(raws):
            heads.pop(0)
        else:
            heads[0][2] = end
    return runs
