"""What aiokafka itself does against a real Kafka 4.4 broker.

streams.transport.kafka builds on these primitives; each test pins down one behaviour it
relies on, so an aiokafka or broker upgrade that changes it fails here first.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from conftest import create_topics, unique_name

# Recent event times: the broker's retention deletes records older than a week within seconds.
BASE = int(time.time() * 1000) - 3_600_000


async def consume_until(consumer: AIOKafkaConsumer, count: int, timeout_s: float = 15.0) -> list[ConsumerRecord]:
    """Poll until `count` records arrived or the deadline passed."""
    records: list[ConsumerRecord] = []
    deadline = time.monotonic() + timeout_s
    while len(records) < count and time.monotonic() < deadline:
        batch = await consumer.getmany(timeout_ms=200)
        for messages in batch.values():
            records.extend(messages)
    return records


async def wait_for(condition: Callable[[], Awaitable[bool] | bool], timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return True
        await asyncio.sleep(0.1)
    return False


def consumer_for(brokers: str, *topics: str, **config) -> AIOKafkaConsumer:
    config.setdefault("auto_offset_reset", "earliest")
    config.setdefault("enable_auto_commit", False)
    config.setdefault("heartbeat_interval_ms", 300)
    return AIOKafkaConsumer(*topics, bootstrap_servers=brokers, **config)


async def test_produce_consume_keys_headers_timestamps(brokers, topic_name):
    await create_topics(brokers, {topic_name: 1})
    producer = AIOKafkaProducer(bootstrap_servers=brokers)
    await producer.start()
    try:
        sent = [
            await producer.send_and_wait(
                topic_name, key=b"k1", value=b"v1", timestamp_ms=BASE + 1_000, headers=[("h", b"1"), ("h", b"2")]
            ),
            await producer.send_and_wait(topic_name, key=None, value=b"v2", timestamp_ms=BASE + 2_000),
            await producer.send_and_wait(topic_name, key=b"k3", value=None, timestamp_ms=BASE + 3_000),
        ]
    finally:
        await producer.stop()
    assert [m.offset for m in sent] == [0, 1, 2]

    consumer = consumer_for(brokers, topic_name)
    await consumer.start()
    try:
        records = await consume_until(consumer, 3)
    finally:
        await consumer.stop()
    assert [(r.key, r.value, r.timestamp) for r in records] == [
        (b"k1", b"v1", BASE + 1_000),
        (None, b"v2", BASE + 2_000),
        (b"k3", None, BASE + 3_000),
    ]
    assert list(records[0].headers) == [("h", b"1"), ("h", b"2")]
    assert list(records[1].headers) == []


async def test_group_members_split_partitions(brokers, topic_name):
    await create_topics(brokers, {topic_name: 4})
    group = unique_name("split")
    first = consumer_for(brokers, topic_name, group_id=group)
    second = consumer_for(brokers, topic_name, group_id=group)
    await first.start()
    try:
        assert await wait_for(lambda: len(first.assignment()) == 4)
        await second.start()
        try:
            assert await wait_for(lambda: len(first.assignment()) == 2 and len(second.assignment()) == 2)
            assert first.assignment().isdisjoint(second.assignment())
            assert first.assignment() | second.assignment() == {TopicPartition(topic_name, p) for p in range(4)}
        finally:
            await second.stop()
        assert await wait_for(lambda: len(first.assignment()) == 4)
    finally:
        await first.stop()


async def test_committed_offsets_resume_a_new_member(brokers, topic_name):
    await create_topics(brokers, {topic_name: 1})
    tp = TopicPartition(topic_name, 0)
    producer = AIOKafkaProducer(bootstrap_servers=brokers)
    await producer.start()
    try:
        for i in range(5):
            await producer.send(topic_name, value=str(i).encode())
        await producer.flush()
    finally:
        await producer.stop()

    group = unique_name("commit")
    consumer = consumer_for(brokers, topic_name, group_id=group)
    await consumer.start()
    try:
        assert await consumer.committed(tp) is None
        records = await consume_until(consumer, 5)
        assert len(records) == 5
        await consumer.commit({tp: 3})
        assert await consumer.committed(tp) == 3
    finally:
        await consumer.stop()

    admin = AIOKafkaAdminClient(bootstrap_servers=brokers)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group, partitions=[tp])
    finally:
        await admin.close()
    assert offsets[tp].offset == 3

    resumed = consumer_for(brokers, topic_name, group_id=group)
    await resumed.start()
    try:
        records = await consume_until(resumed, 2)
    finally:
        await resumed.stop()
    assert [r.value for r in records] == [b"3", b"4"]


async def test_offsets_for_times(brokers, topic_name):
    await create_topics(brokers, {topic_name: 1})
    tp = TopicPartition(topic_name, 0)
    producer = AIOKafkaProducer(bootstrap_servers=brokers)
    await producer.start()
    try:
        for ts in (1_000, 2_000, 3_000):
            await producer.send_and_wait(topic_name, value=b"x", timestamp_ms=BASE + ts)
    finally:
        await producer.stop()

    consumer = consumer_for(brokers)
    await consumer.start()
    try:
        exact = await consumer.offsets_for_times({tp: BASE + 2_000})
        between = await consumer.offsets_for_times({tp: BASE + 1_500})
        after = await consumer.offsets_for_times({tp: BASE + 5_000})
        assert await consumer.beginning_offsets([tp]) == {tp: 0}
        assert await consumer.end_offsets([tp]) == {tp: 3}
    finally:
        await consumer.stop()
    assert (exact[tp].offset, exact[tp].timestamp) == (1, BASE + 2_000)
    assert (between[tp].offset, between[tp].timestamp) == (1, BASE + 2_000)
    assert after[tp] is None


async def describe_topic_config(brokers: str, topic: str) -> dict[str, str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=brokers)
    await admin.start()
    try:
        responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    (resource,) = [r for response in responses for r in response.resources]
    error_code, _message, _type, name, entries = resource
    assert error_code == 0 and name == topic
    return {entry[0]: entry[1] for entry in entries}


async def test_compacted_topic_config_and_compaction(brokers, topic_name):
    await create_topics(
        brokers,
        {topic_name: 1},
        config={
            "cleanup.policy": "compact",
            "segment.ms": "100",
            "min.cleanable.dirty.ratio": "0.001",
            "delete.retention.ms": "100",
        },
    )
    config = await describe_topic_config(brokers, topic_name)
    assert config["cleanup.policy"] == "compact"
    assert config["segment.ms"] == "100"

    producer = AIOKafkaProducer(bootstrap_servers=brokers)
    await producer.start()
    try:
        await producer.send_and_wait(topic_name, key=b"k", value=b"old")
        await producer.send_and_wait(topic_name, key=b"k", value=b"new")
        await asyncio.sleep(0.3)
        # A later record rolls the segment, so the overwritten one becomes cleanable.
        await producer.send_and_wait(topic_name, key=b"other", value=b"x")
    finally:
        await producer.stop()

    tp = TopicPartition(topic_name, 0)

    async def compacted() -> bool:
        consumer = consumer_for(brokers)
        await consumer.start()
        try:
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            end = (await consumer.end_offsets([tp]))[tp]
            records = []
            while not records or records[-1].offset < end - 1:
                batch = await consumer.getmany(tp, timeout_ms=500)
                if not batch:
                    break
                records.extend(batch[tp])
        finally:
            await consumer.stop()
        return [r.value for r in records if r.key == b"k"] == [b"new"]

    assert await wait_for(compacted, timeout_s=20)


async def test_idempotent_producer(brokers, topic_name):
    await create_topics(brokers, {topic_name: 2})
    producer = AIOKafkaProducer(bootstrap_servers=brokers, enable_idempotence=True)
    await producer.start()
    try:
        futures = [await producer.send(topic_name, value=str(i).encode(), partition=i % 2) for i in range(20)]
        metadata = await asyncio.gather(*futures)
        assert producer._txn_manager.producer_id >= 0
    finally:
        await producer.stop()
    for partition in (0, 1):
        offsets = [m.offset for m in metadata if m.partition == partition]
        assert offsets == list(range(10))


async def test_transactions_commit_abort_and_offsets(brokers, topic_name):
    source, sink = f"{topic_name}-in", f"{topic_name}-out"
    await create_topics(brokers, {source: 1, sink: 1})
    group = unique_name("txn-group")
    source_tp = TopicPartition(source, 0)
    producer = AIOKafkaProducer(bootstrap_servers=brokers, transactional_id=unique_name("txn"))
    await producer.start()
    try:
        await producer.begin_transaction()
        await producer.send(sink, value=b"committed-1")
        await producer.send(sink, value=b"committed-2")
        await producer.send_offsets_to_transaction({source_tp: 42}, group)
        await producer.commit_transaction()

        await producer.begin_transaction()
        await producer.send(sink, value=b"aborted")
        await producer.send_offsets_to_transaction({source_tp: 99}, group)
        await producer.abort_transaction()

        await producer.begin_transaction()
        last = await (await producer.send(sink, value=b"committed-3"))
        await producer.commit_transaction()
    finally:
        await producer.stop()
    # Each commit/abort writes a control record, which takes an offset:
    # 0, 1 committed, 2 marker, 3 aborted, 4 marker, 5 committed, 6 marker.
    assert last.offset == 5

    committed = consumer_for(brokers, sink, isolation_level="read_committed")
    uncommitted = consumer_for(brokers, sink)
    await committed.start()
    await uncommitted.start()
    try:
        seen = await consume_until(committed, 3)
        everything = await consume_until(uncommitted, 4)
        assert await committed.end_offsets([TopicPartition(sink, 0)]) == {TopicPartition(sink, 0): 7}
    finally:
        await committed.stop()
        await uncommitted.stop()
    assert [r.value for r in seen] == [b"committed-1", b"committed-2", b"committed-3"]
    assert [r.value for r in everything] == [b"committed-1", b"committed-2", b"aborted", b"committed-3"]

    admin = AIOKafkaAdminClient(bootstrap_servers=brokers)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group, partitions=[source_tp])
    finally:
        await admin.close()
    assert offsets[source_tp].offset == 42
