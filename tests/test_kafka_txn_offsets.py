"""KIP-447 offset commits (streams.transport.kafka.txn_offsets) against the real broker.

Offsets sent with a consumer's group metadata commit atomically with the
transaction's records, are invisible (and reported unstable) while it is open,
vanish when it aborts, and are refused from a stale generation or an unknown
member.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka.errors import IncompatibleBrokerVersion
from conftest import unique_name

from streams.errors import GenerationFencedError, UnsupportedBrokerError
from streams.transport import OutRecord, TopicPartition, TopicSpec
from streams.transport.base import GroupMetadata
from streams.transport.kafka import KafkaAdmin, KafkaConsumer, KafkaTransport
from streams.transport.kafka.txn_offsets import GenerationTxnOffsetCommit, StableOffsetFetch

FAST_GROUP = {"heartbeat_interval_ms": 300, "session_timeout_ms": 6000}


@pytest.fixture
def transport(brokers) -> KafkaTransport:
    return KafkaTransport(brokers, {"client_id": "streams-tests"})


@pytest.fixture
async def admin(transport) -> KafkaAdmin:
    admin = transport.admin()
    await admin.start()
    yield admin
    await admin.stop()


class Listener:
    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        pass

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        pass


async def until(condition, timeout_s: float = 30.0, poll: list[KafkaConsumer] = ()) -> None:
    """Wait for condition(), polling the given consumers so that their group memberships progress."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        if poll:
            await asyncio.gather(*(consumer.poll(100) for consumer in poll))
        else:
            await asyncio.sleep(0.1)


async def eventually(read, expected, timeout_s: float = 15.0):
    """Kafka writes a transaction's markers just after commit or abort returns: await read() == expected."""
    deadline = time.monotonic() + timeout_s
    while (value := await read()) != expected and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return value


async def member(transport: KafkaTransport, group: str, topic: str) -> KafkaConsumer:
    consumer = transport.consumer(group, isolation_level="read_committed", config=FAST_GROUP)
    await consumer.start()
    consumer.subscribe([topic], Listener())
    return consumer


async def committed_records(transport: KafkaTransport, tp: TopicPartition) -> list[bytes]:
    consumer = transport.consumer(None, isolation_level="read_committed")
    await consumer.start()
    try:
        end = (await consumer.end_offsets([tp]))[tp]
        consumer.assign([tp])
        consumer.seek(tp, 0)
        values = []
        while await consumer.position(tp) < end:
            values.extend(r.value for r in (await consumer.poll(200)).get(tp, []))
        return values
    finally:
        await consumer.stop()


def record(tp: TopicPartition, value: bytes) -> OutRecord:
    return OutRecord(tp.topic, tp.partition, None, value, None, ())


async def test_offsets_commit_atomically_with_the_records_and_abort_discards_them(transport, admin, topic_name):
    source, sink = TopicPartition(f"{topic_name}-in", 0), TopicPartition(f"{topic_name}-out", 0)
    await admin.create_topics([TopicSpec(source.topic, 1), TopicSpec(sink.topic, 1)])
    group = unique_name("kip447")
    consumer = await member(transport, group, source.topic)
    reader = transport.consumer(group, isolation_level="read_committed")  # reads the group's offsets only
    await reader.start()
    reader.assign([source])
    producer = transport.producer(transactional_id=unique_name("txn"))
    await producer.start()
    try:
        await until(lambda: consumer.group_metadata().generation_id > 0, poll=[consumer])
        metadata = consumer.group_metadata()
        assert metadata.group_id == group and metadata.member_id

        await producer.begin_transaction()
        await producer.send_many([record(sink, b"first")])
        await producer.flush()
        await producer.send_offsets_to_transaction({source: 5}, metadata)
        assert await reader.seek_to_committed_or_reset([source]) == {source}, "pending offsets are unstable"
        assert await admin.committed_offsets(group, [source]) == {source: None}
        assert await committed_records(transport, sink) == []
        await producer.commit_transaction()
        assert await eventually(lambda: reader.seek_to_committed_or_reset([source]), set()) == set()
        assert await reader.position(source) == 5
        assert await eventually(lambda: committed_records(transport, sink), [b"first"]) == [b"first"]

        await producer.begin_transaction()
        await producer.send_many([record(sink, b"aborted")])
        await producer.flush()
        await producer.send_offsets_to_transaction({source: 9}, consumer.group_metadata())
        assert await reader.seek_to_committed_or_reset([source]) == {source}
        await producer.abort_transaction()
        assert await eventually(lambda: reader.seek_to_committed_or_reset([source]), set()) == set()
        assert await admin.committed_offsets(group, [source]) == {source: 5}
        assert await committed_records(transport, sink) == [b"first"]

        # A transaction with offsets and no record still commits them.
        await producer.begin_transaction()
        await producer.send_offsets_to_transaction({source: 7}, consumer.group_metadata())
        await producer.commit_transaction()
        assert await eventually(lambda: admin.committed_offsets(group, [source]), {source: 7}) == {source: 7}
    finally:
        await producer.stop()
        await reader.stop()
        await consumer.stop()


async def test_a_stale_generation_or_an_unknown_member_is_fenced(transport, admin, topic_name):
    await admin.create_topics([TopicSpec(topic_name, 2)])
    source = TopicPartition(topic_name, 0)
    group = unique_name("kip447")
    first = await member(transport, group, topic_name)
    producer = transport.producer(transactional_id=unique_name("txn"))
    await producer.start()
    second = None
    try:
        await until(lambda: first.group_metadata().generation_id > 0, poll=[first])
        stale = first.group_metadata()
        second = await member(transport, group, topic_name)
        await until(lambda: first.group_metadata().generation_id > stale.generation_id
                    and second.group_metadata().generation_id == first.group_metadata().generation_id,
                    poll=[first, second])
        assert first.group_metadata().member_id == stale.member_id, "the same member, a newer generation"

        lapsed = GroupMetadata(group, "", -1)  # what a consumer reports once its membership lapsed
        for fenced, error in ((stale, "ILLEGAL_GENERATION"), (lapsed, "not a member"),
                              (GroupMetadata(group, "not-a-member", stale.generation_id + 1), "UNKNOWN_MEMBER_ID")):
            await producer.begin_transaction()
            await producer.send_many([record(TopicPartition(topic_name, 1), b"zombie")])
            with pytest.raises(GenerationFencedError, match=error):
                await producer.send_offsets_to_transaction({source: 3}, fenced)
            await producer.abort_transaction()
        assert await admin.committed_offsets(group, [source]) == {source: None}

        await producer.begin_transaction()
        await producer.send_offsets_to_transaction({source: 4}, first.group_metadata())
        await producer.commit_transaction()
        assert await eventually(lambda: admin.committed_offsets(group, [source]), {source: 4}) == {source: 4}
    finally:
        await producer.stop()
        for consumer in (first, second):
            if consumer is not None:
                await consumer.stop()


def test_a_broker_without_kip_447_is_named_with_the_setting_that_works():
    commit = GenerationTxnOffsetCommit("tid", 1, 0, GroupMetadata("g", "m", 1), {TopicPartition("t", 0): 1})
    with pytest.raises(IncompatibleBrokerVersion, match="exactly_once'") as raised:
        commit.prepare({28: (0, 2)})
    assert isinstance(raised.value, UnsupportedBrokerError), "the worker stops on it instead of retrying"
    assert commit.prepare({28: (0, 5)}).API_VERSION == 3
    with pytest.raises(IncompatibleBrokerVersion, match="OffsetFetch v7"):
        StableOffsetFetch("g", [TopicPartition("t", 0)]).prepare({9: (0, 6)})
