"""Sending to and reading from topics outside the tasks: scripts, the run handle and the command line.

Inside a worker, records leave through the tasks' output and the commit
protocol.  These are for everything else: send_records() writes records with a
producer of its own (when no worker of the app runs in this process), and
TopicReader reads a topic from its start, its end, or its last records, with
the topic's serdes.  Both place keys by the same murmur2 rule as the tasks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streams.config import StreamsConfig
from streams.errors import TopologyError
from streams.partitioner import KeyPartitioner
from streams.record import Record
from streams.runtime.topics import declaration
from streams.serdes import Serde
from streams.transport.base import Admin, OutRecord, RawRecord, TopicPartition, TopicSpec, Transport
from streams.transport.factory import open_transport


def no_such_topics(missing: list[str], doing: str) -> TopologyError:
    what = ", ".join(map(repr, missing))
    return TopologyError(f"cannot {doing} {what}: no such topic" + ("s" if len(missing) > 1 else ""),
                         hint="declare it in the app and a worker creates it at start: "
                              + "; ".join(declaration(t) for t in missing))


def place(records: list[OutRecord], counts: Mapping[str, int], partitioner: KeyPartitioner) -> list[OutRecord]:
    """Give records without a partition the one their key hashes to."""
    return [r if r.partition >= 0 else r._replace(partition=partitioner(r.key, counts[r.topic])) for r in records]


async def end_offsets(admin: Admin, topics: list[str]) -> dict[TopicPartition, int]:
    """The current end of every partition of the topics that exist."""
    info = await admin.describe_topics(topics)
    partitions = [TopicPartition(t, p) for t, i in info.items() if i is not None for p in range(i.partitions)]
    return await admin.list_offsets(partitions, "latest") if partitions else {}


async def send_records(config: StreamsConfig, declared: Mapping[str, TopicSpec], records: list[OutRecord]) -> None:
    """Write records with a producer of their own and wait until they are written.

    A declared topic that does not exist is created first, as a worker would;
    any other missing topic is an error naming it.
    """
    transport = open_transport(config)
    admin = transport.admin()
    await admin.start()
    try:
        topics = sorted({r.topic for r in records})
        info = await admin.describe_topics(topics)
        create = [declared[t] for t in topics if info.get(t) is None and t in declared]
        if create:
            await admin.create_topics(create)
            info.update(await admin.describe_topics([s.name for s in create]))
        missing = [t for t in topics if info.get(t) is None]
        if missing:
            raise no_such_topics(missing, "send to")
        placed = place(records, {t: i.partitions for t, i in info.items() if i is not None}, KeyPartitioner())
        producer = transport.producer(config=config.producer_config)
        await producer.start()
        try:
            await producer.send_many(placed)
            await producer.flush()
        finally:
            await producer.stop()
    finally:
        await admin.stop()


class TopicReader:
    """Reads every partition of one topic, outside any consumer group, deserializing with the topic's serdes.

    A record whose key or value the serdes cannot read keeps that part as bytes
    (a dead-letter topic holds whatever failed to be read).
    """

    def __init__(self, transport: Transport, topic: str, key_serde: Serde, value_serde: Serde,
                 config: Mapping[str, Any] | None = None) -> None:
        self.topic = topic
        self.key_serde = key_serde
        self.value_serde = value_serde
        self._consumer = transport.consumer(None, isolation_level="read_committed", config=config)
        self.partitions: list[TopicPartition] = []

    async def start(self, admin: Admin, start: str | Mapping[TopicPartition, int] = "beginning",
                    last: int = 0) -> None:
        """Position at the "beginning", `last` records before the "end", or at given offsets (else the beginning)."""
        info = (await admin.describe_topics([self.topic])).get(self.topic)
        if info is None:
            raise no_such_topics([self.topic], "read")
        await self._consumer.start()
        self.partitions = [TopicPartition(self.topic, p) for p in range(info.partitions)]
        self._consumer.assign(self.partitions)
        beginnings = await self._consumer.beginning_offsets(self.partitions)
        ends = await self._consumer.end_offsets(self.partitions)
        for tp in self.partitions:
            if isinstance(start, Mapping):
                self._consumer.seek(tp, max(beginnings[tp], start.get(tp, beginnings[tp])))
            elif start == "beginning":
                self._consumer.seek(tp, beginnings[tp])
            else:
                self._consumer.seek(tp, max(beginnings[tp], ends[tp] - last))

    async def poll(self, timeout_ms: int) -> list[Record]:
        """The records fetched within the timeout, each partition's in order."""
        batches = await self._consumer.poll(timeout_ms)
        return [self._record(raw) for raws in batches.values() for raw in raws]

    async def caught_up(self, ends: Mapping[TopicPartition, int]) -> bool:
        return all([await self._consumer.position(tp) >= ends[tp] for tp in self.partitions])

    async def end_offsets(self) -> dict[TopicPartition, int]:
        return await self._consumer.end_offsets(self.partitions)

    def _record(self, raw: RawRecord) -> Record:
        return Record(_read(self.key_serde, raw.key), _read(self.value_serde, raw.value), raw.timestamp,
                      raw.headers, raw)

    async def stop(self) -> None:
        await self._consumer.stop()


def _read(serde: Serde, data: bytes | None) -> Any:
    try:
        return serde.deserialize(data)
    except Exception:
        return data
