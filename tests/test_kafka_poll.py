"""KafkaConsumer.poll against the broker: its GC-paused paths return what getmany would.

poll takes fetched records with a zero-timeout getmany; with nothing fetched it
waits for one record and then takes the rest.  These tests pin the results of
both paths: every record once, in offset order per partition, within
max_records, and an empty poll that still waits its timeout.  The consumer's
records are parsed straight into RawRecords (streams/transport/kafka/fetched.py):
these tests hold that path to what aiokafka reads for a plain consumer, aborted
transactions and headers included.
"""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka import TopicPartition as KafkaPartition
from conftest import create_topics, unique_name

from streams.transport import OutRecord, RawRecord, TopicPartition
from streams.transport.kafka import KafkaTransport
from streams.transport.kafka.consumer import to_raw_batches
from streams.transport.kafka.fetched import INSTALLED

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
    await create_topics(brokers, {topic: 3})
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
    await create_topics(brokers, {topic: 1})
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


async def test_fetched_records_are_raw_records_and_agree_with_a_plain_consumer(brokers):
    """Committed, aborted and headed records, read committed: the same records a plain aiokafka consumer reads."""
    transport = KafkaTransport(brokers)
    topic = unique_name("poll-raw")
    await create_topics(brokers, {topic: 2})
    producer = transport.producer(transactional_id=unique_name("poll-raw"))
    await producer.start()
    try:
        for n, outcome in enumerate(["commit", "abort", "commit"]):
            await producer.begin_transaction()
            await producer.send_many([OutRecord(topic, i % 2, None if i == 3 else b"k%d" % i,
                                                None if i == 4 else b"%s-%d-%d" % (outcome.encode(), n, i),
                                                BASE + i, (("n", b"%d" % i), ("o", outcome.encode())) if i % 3 else ())
                                      for i in range(50)])
            await producer.flush()
            await (producer.commit_transaction() if outcome == "commit" else producer.abort_transaction())
    finally:
        await producer.stop()

    consumer = transport.consumer(None, isolation_level="read_committed")
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(2)]
        consumer.assign(partitions)
        await consumer.seek_to_committed_or_reset(partitions)
        ours: list = []
        deadline = time.monotonic() + 20
        while len(ours) < 100 and time.monotonic() < deadline:
            for records in (await consumer.poll(200)).values():
                assert all(type(r) is RawRecord for r in records)
                ours.extend(records)
    finally:
        await consumer.stop()

    plain = AIOKafkaConsumer(bootstrap_servers=brokers, isolation_level="read_committed",
                             auto_offset_reset="earliest", enable_auto_commit=False)
    await plain.start()
    try:
        plain.assign([KafkaPartition(topic, p) for p in range(2)])
        theirs: list = []
        deadline = time.monotonic() + 20
        while len(theirs) < 100 and time.monotonic() < deadline:
            for records in (await plain.getmany(timeout_ms=200)).values():
                assert all(type(r) is ConsumerRecord for r in records), "other consumers keep aiokafka's records"
                theirs.extend(records)
    finally:
        await plain.stop()

    assert INSTALLED
    assert len(ours) == 100 and not any(b"abort" in (r.value or b"") for r in ours)
    assert sorted(ours) == sorted(RawRecord(r.topic, r.partition, r.offset, r.timestamp, r.key, r.value, r.headers)
                                  for r in theirs)
    assert any(r.headers for r in ours) and any(r.key is None for r in ours) and any(r.value is None for r in ours)


def test_consumer_records_are_copied_when_the_fetcher_cannot_build_raw_records():
    """The fallback when aiokafka lacks the hook: ConsumerRecords become RawRecords, headers as tuples."""
    tp = KafkaPartition("t", 1)
    records = [ConsumerRecord("t", 1, 7, BASE, 0, b"k", b"v", None, 1, 1, [("h", b"x")]),
               ConsumerRecord("t", 1, 8, BASE + 1, 0, None, None, None, -1, -1, ())]
    assert to_raw_batches({tp: records}) == {
        TopicPartition("t", 1): [RawRecord("t", 1, 7, BASE, b"k", b"v", (("h", b"x"),)),
                                 RawRecord("t", 1, 8, BASE + 1, None, None, ())]}
    raw = [RawRecord("t", 1, 9, BASE, b"k", b"v", ())]
    assert to_raw_batches({tp: raw})[TopicPartition("t", 1)] is raw
