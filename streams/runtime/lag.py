"""The lag of an application's consumer group: per input partition, its committed offset against its end.

It reads the group's committed offsets and the partitions' end offsets through
the admin client, so it works from any process, on Kafka and on the embedded
broker alike, whether or not a worker runs.  A partition the group never
committed counts from its first offset, where a new worker would start.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from streams.compiler.compile import CompiledTopology
from streams.config import StreamsConfig
from streams.record import TopicPartition
from streams.transport.factory import open_transport


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int | None
    end: int
    lag: int


@dataclass(frozen=True)
class GroupLag:
    group: str
    partitions: list[PartitionLag]

    @property
    def total(self) -> int:
        return sum(p.lag for p in self.partitions)

    def as_dict(self) -> dict:
        return {"group": self.group, "total": self.total, "partitions": [asdict(p) for p in self.partitions]}


async def group_lag(config: StreamsConfig, topology: CompiledTopology) -> GroupLag:
    """Lag of every partition of the app's input and repartition topics (topics not created yet are left out)."""
    admin = open_transport(config).admin()
    await admin.start()
    try:
        info = await admin.describe_topics(topology.all_source_topics)
        tps = [TopicPartition(t, p) for t, i in sorted(info.items()) if i is not None for p in range(i.partitions)]
        committed = await admin.committed_offsets(config.app_id, tps)
        ends = await admin.list_offsets(tps, "latest")
        starts = await admin.list_offsets([tp for tp in tps if committed.get(tp) is None], "earliest")
    finally:
        await admin.stop()
    partitions = []
    for tp in tps:
        done = committed.get(tp)
        position = done if done is not None else starts[tp]
        partitions.append(PartitionLag(tp.topic, tp.partition, done, ends[tp], max(0, ends[tp] - position)))
    return GroupLag(config.app_id, partitions)
