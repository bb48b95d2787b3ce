"""KafkaConsumer.poll against the broker: its GC-paused paths return what getmany would.

poll takes fetched records with a zero-timeout getmany; with nothing fetched it
waits for one record and then takes the rest.  These tests pin the results of
both paths: every record once, in offset order per partition, within
max_records, and an empty poll that still waits its timeout.
"""

from __future__ import annotations

import asyncio
import time

from conftest import unique_name

from streams.transport import OutRecord, TopicPartition, TopicSpec
from streams.transport.kafka import KafkaTransport

BASE = int(time.time() * 1000) - 3_600_000


async def produce(transport: KafkaTransport, topic: str, partitions: int, per_partition: int) -> None:
    producer = transport.producer()
    await producer.start()
    try:
        await producer.send_many([OutRecord(topic, p, b"k%d" % p, b"v%d-%d" % (p, i), BASE + i, ())
                                  for p in range(partitions) for i in range(per_partition)])
        await producer.flush()
    finally:
        await producer.stop()


async def test_polls_return_every_record_once_in_order_within_max_records(brokers):
    transport = KafkaTransport(brokers)
    topic = unique_name("poll")
    admin = transport.admin()
    await admin.start()
    await admin.create_topics([TopicSpec(topic, 3)])
    await admin.stop()
    await produce(transport, topic, 3, 500)
    consumer = transport.consumer(None)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(3)]
        consumer.assign(partitions)
        await consumer.seek_to_committed_or_reset(partitions)
        seen: dict[TopicPartition, list[int]] = {tp: [] for tp in partitions}
        deadline = time.monotonic() + 20
        while sum(map(len, seen.values())) < 1500 and time.monotonic() < deadline:
            batches = await consumer.poll(200, 100)
            assert sum(map(len, batches.values())) <= 100
            for tp, records in batches.items():
                assert all(r.topic == tp.topic and r.partition == tp.partition for r in records)
                seen[tp].extend(r.offset for r in records)
        assert seen == {tp: list(range(500)) for tp in partitions}
        started = time.monotonic()
        assert await consumer.poll(300, 1) == {}
        assert time.monotonic() - started >= 0.25, "an empty poll waits for its timeout"
    finally:
        await consumer.stop()


async def test_a_poll_for_one_record_waits_for_it(brokers):
    transport = KafkaTransport(brokers)
    topic = unique_name("poll-one")
    admin = transport.admin()
    await admin.start()
    await admin.create_topics([TopicSpec(topic, 1)])
    await admin.stop()
    consumer = transport.consumer(None)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_committed_or_reset([tp])
        polled = asyncio.create_task(consumer.poll(10_000, 1))
        await asyncio.sleep(0.3)
        assert not polled.done()
        await produce(transport, topic, 1, 3)
        batches = await asyncio.wait_for(polled, 10)
        assert [r.value for r in batches[tp]] == [b"v0-0"]
    finally:
        await consumer.stop()
