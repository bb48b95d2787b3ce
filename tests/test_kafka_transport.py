"""streams.transport.kafka against a real Kafka broker: the transport protocols end to end."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable, Mapping

import pytest
from aiokafka.errors import CommitFailedError, KafkaError
from conftest import REPO, unique_name

from streams.transport import (
    MemberAssignment,
    MemberSubscription,
    OutRecord,
    RawRecord,
    TopicPartition,
    TopicSpec,
)
from streams.transport.kafka import KafkaAdmin, KafkaConsumer, KafkaTransport

FAST_GROUP = {"heartbeat_interval_ms": 300}

# Recent event times: the broker's retention deletes records older than a week within seconds.
BASE = int(time.time() * 1000) - 3_600_000


@pytest.fixture
def transport(brokers) -> KafkaTransport:
    return KafkaTransport(brokers, {"client_id": "streams-tests"})


@pytest.fixture
async def admin(transport) -> KafkaAdmin:
    admin = transport.admin()
    await admin.start()
    yield admin
    await admin.stop()


async def wait_for(condition: Callable[[], Awaitable[bool] | bool], timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return True
        await asyncio.sleep(0.05)
    return False


async def poll_until(consumer: KafkaConsumer, count: int, timeout_s: float = 15.0) -> list[RawRecord]:
    records: list[RawRecord] = []
    deadline = time.monotonic() + timeout_s
    while len(records) < count and time.monotonic() < deadline:
        for batch in (await consumer.poll(timeout_ms=200)).values():
            records.extend(batch)
    return records


async def read_all(
    transport: KafkaTransport, partitions: list[TopicPartition], count: int, **consumer_options
) -> list[RawRecord]:
    consumer = transport.consumer(None, **consumer_options)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_committed_or_reset(partitions)
        return await poll_until(consumer, count)
    finally:
        await consumer.stop()


def out(topic: str, partition: int, value: bytes, **fields) -> OutRecord:
    return OutRecord(topic, partition, fields.get("key"), value, fields.get("timestamp"), fields.get("headers", ()))


async def test_send_many_across_partitions_then_consume(transport, admin, topic_name):
    await admin.create_topics([TopicSpec(topic_name, 3)])
    records = [
        out(topic_name, i % 3, f"v{i}".encode(), key=f"k{i}".encode(), timestamp=BASE + i, headers=(("n", b"%d" % i),))
        for i in range(30)
    ]
    producer = transport.producer()
    await producer.start()
    try:
        await producer.send_many(records)
        assert await producer.flush() == {TopicPartition(topic_name, p): 9 for p in range(3)}
    finally:
        await producer.stop()

    partitions = [TopicPartition(topic_name, p) for p in range(3)]
    received = await read_all(transport, partitions, 30)
    assert len(received) == 30
    for partition in range(3):
        mine = [r for r in received if r.partition == partition]
        assert [r.offset for r in mine] == list(range(10))
        expected = [r for r in records if r.partition == partition]
        assert [(r.key, r.value, r.timestamp, r.headers) for r in mine] == [
            (r.key, r.value, r.timestamp, r.headers) for r in expected
        ]
    assert all(isinstance(r.headers, tuple) and r.headers[0] == ("n", r.value[1:]) for r in received)


async def test_flush_returns_last_offset_per_partition_over_many_batches(transport, admin, topic_name):
    await admin.create_topics([TopicSpec(topic_name, 2)])
    p0, p1 = TopicPartition(topic_name, 0), TopicPartition(topic_name, 1)
    producer = transport.producer(config={"max_batch_size": 1024})
    await producer.start()
    try:
        assert await producer.flush() == {}
        await producer.send_many(out(topic_name, 0, b"x" * 100) for _ in range(50))
        await producer.send_many([out(topic_name, 1, b"y")])
        assert len(producer._pending) > 5, "small batches should split 50 records"
        assert await producer.flush() == {p0: 49, p1: 0}
        await producer.send_many([out(topic_name, 0, b"z"), out(topic_name, 0, b"z")])
        assert await producer.flush() == {p0: 51}
    finally:
        await producer.stop()
    assert await admin.list_offsets([p0, p1], "latest") == {p0: 52, p1: 1}
    received = await read_all(transport, [p0], 52)
    assert [r.offset for r in received] == list(range(52))


async def test_flush_raises_the_first_send_error(transport, admin, topic_name):
    await admin.create_topics([TopicSpec(topic_name, 2, config={"max.message.bytes": "2000"})])
    producer = transport.producer()
    await producer.start()
    try:
        await producer.send_many([out(topic_name, 0, b"ok"), out(topic_name, 1, b"x" * 10_000)])
        with pytest.raises(KafkaError):
            await producer.flush()
        await producer.send_many([out(topic_name, 0, b"still-ok")])
        assert await producer.flush() == {TopicPartition(topic_name, 0): 1}
    finally:
        await producer.stop()


def padded(i: int) -> bytes:
    return (b"c%d" % i).ljust(100, b".")


async def test_idempotent_compressed_batches(transport, admin, topic_name):
    await admin.create_topics([TopicSpec(topic_name, 2)])
    p0, p1 = TopicPartition(topic_name, 0), TopicPartition(topic_name, 1)
    config = {"enable_idempotence": True, "compression_type": "gzip", "max_batch_size": 1024}
    producer = transport.producer(config=config)
    await producer.start()
    try:
        for _ in range(3):
            await producer.send_many(out(topic_name, i % 2, padded(i)) for i in range(40))
        assert len(producer._pending) > 6
        assert await producer.flush() == {p0: 59, p1: 59}
    finally:
        await producer.stop()
    received = await read_all(transport, [p0, p1], 120)
    assert [r.value for r in received if r.partition == 0] == [padded(i) for i in range(0, 40, 2)] * 3
    assert await admin.list_offsets([p0, p1], "latest") == {p0: 60, p1: 60}


async def test_transactional_send_many_commit_and_abort(transport, admin, topic_name):
    sink, source = f"{topic_name}-out", f"{topic_name}-in"
    await admin.create_topics([TopicSpec(sink, 2), TopicSpec(source, 1)])
    s0, s1, src = TopicPartition(sink, 0), TopicPartition(sink, 1), TopicPartition(source, 0)
    group = unique_name("txn-group")
    producer = transport.producer(transactional_id=unique_name("txn"), config={"max_batch_size": 512})
    await producer.start()
    try:
        await producer.begin_transaction()
        await producer.send_many([out(sink, 0, padded(i)) for i in range(20)] + [out(sink, 1, b"c1")])
        assert len(producer._pending) > 3, "small batches should split 20 records"
        assert await producer.flush() == {s0: 19, s1: 0}
        await producer.send_offsets_to_transaction({src: 7}, group)
        await producer.commit_transaction()

        await producer.begin_transaction()
        await producer.send_many([out(sink, 0, b"aborted"), out(sink, 1, b"aborted")])
        await producer.send_offsets_to_transaction({src: 99}, group)
        await producer.abort_transaction()

        await producer.begin_transaction()
        await producer.send_many([out(sink, 0, b"last")])
        # 0-19 committed, 20 commit marker, 21 aborted, 22 abort marker: control records take offsets.
        assert await producer.flush() == {s0: 23}
        await producer.commit_transaction()

        await producer.begin_transaction()
        await producer.send_many([out(sink, 1, b"unflushed-then-committed")])
        await producer.commit_transaction()
        assert await producer.flush() == {}
    finally:
        await producer.stop()

    committed = await read_all(transport, [s0, s1], 23, isolation_level="read_committed")
    values = {tp: [r.value for r in committed if r.partition == tp.partition] for tp in (s0, s1)}
    assert values[s0] == [padded(i) for i in range(20)] + [b"last"]
    assert values[s1] == [b"c1", b"unflushed-then-committed"]
    everything = await read_all(transport, [s0, s1], 25)
    assert sum(r.value == b"aborted" for r in everything) == 2
    assert await admin.committed_offsets(group, [src]) == {src: 7}


async def test_transactional_abort_discards_queued_batches(transport, admin, topic_name):
    await admin.create_topics([TopicSpec(topic_name, 1)])
    tp = TopicPartition(topic_name, 0)
    producer = transport.producer(transactional_id=unique_name("txn"))
    await producer.start()
    try:
        await producer.begin_transaction()
        await producer.send_many([out(topic_name, 0, b"gone")])
        await producer.abort_transaction()
        assert producer._pending == []
        await producer.begin_transaction()
        await producer.send_many([out(topic_name, 0, b"kept")])
        await producer.commit_transaction()
    finally:
        await producer.stop()
    assert [r.value for r in await read_all(transport, [tp], 1, isolation_level="read_committed")] == [b"kept"]


FENCED_SEND = """
import asyncio, sys
from streams.errors import TaskFencedError
from streams.transport import OutRecord
from streams.transport.kafka import KafkaTransport

async def main(brokers, topic, transactional_id):
    transport = KafkaTransport(brokers)
    # Small batches: the 40 KB below fill three, so that batches queue behind the one that fails.
    fenced = transport.producer(transactional_id=transactional_id, config={"max_batch_size": 16384})
    await fenced.start()
    await fenced.begin_transaction()
    newer = transport.producer(transactional_id=transactional_id)
    await newer.start()
    try:
        await fenced.send_many([OutRecord(topic, 0, None, b"x" * 1000, None, ()) for _ in range(40)])
        print("sent")
    except TaskFencedError:
        print("fenced")
    await newer.stop()
    await fenced.stop()

asyncio.run(main(*sys.argv[1:]))
"""


async def test_a_fenced_producer_reports_fencing_from_send_many(transport, admin, topic_name, brokers):
    """A batch queued behind one that failed because a newer producer took the transactional id fails the
    send itself, and that is TaskFencedError, on which the worker closes the task (aiokafka's own
    ProducerFenced had crashed the worker).  In a child process: the failed futures aiokafka leaves behind
    trip a CPython 3.11 parser bug when they are finalized in a pytest process."""
    await admin.create_topics([TopicSpec(topic_name, 1)])
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", FENCED_SEND, brokers, topic_name, unique_name("txn"), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(REPO)})
    stdout, _ = await asyncio.wait_for(child.communicate(), 60)
    assert stdout.decode().split() == ["fenced"]


class RecordingListener:
    def __init__(self) -> None:
        self.events: list[tuple[str, set[TopicPartition]]] = []

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.events.append(("revoked", revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        assert all(type(tp) is TopicPartition for tp in assigned)
        self.events.append(("assigned", assigned))


async def test_group_consumer_listener_commit_and_membership(transport, admin, topic_name):
    await admin.create_topics([TopicSpec(topic_name, 2)])
    p0, p1 = TopicPartition(topic_name, 0), TopicPartition(topic_name, 1)
    producer = transport.producer()
    await producer.start()
    try:
        await producer.send_many([out(topic_name, p, b"%d" % i) for p in (0, 1) for i in range(3)])
        await producer.flush()
    finally:
        await producer.stop()

    group = unique_name("group")
    assert await admin.active_members(group) == []
    listener = RecordingListener()
    consumer = transport.consumer(group, config=FAST_GROUP)
    assert consumer.group_metadata() == (group, "", -1, None)
    await consumer.start()
    try:
        consumer.subscribe([topic_name], listener)
        records = await poll_until(consumer, 6)
        assert len(records) == 6
        assert ("assigned", {p0, p1}) in listener.events
        assert consumer.assignment() == {p0, p1}
        metadata = consumer.group_metadata()
        member_id = metadata.member_id
        assert member_id and metadata.generation_id >= 1 and metadata.group_id == group
        assert await admin.active_members(group) == [member_id]

        assert await consumer.committed(p0) is None
        await consumer.commit({p0: 2, p1: 0})
        assert await consumer.committed(p0) == 2
        assert await admin.committed_offsets(group, [p0, p1]) == {p0: 2, p1: 0}
        with pytest.raises(CommitFailedError, match="active members"):
            await admin.set_committed_offsets(group, {p0: 1})
        assert await admin.committed_offsets(group, [p0]) == {p0: 2}
    finally:
        await consumer.stop()
    assert await wait_for(lambda: no_members(admin, group))


async def no_members(admin: KafkaAdmin, group: str) -> bool:
    return await admin.active_members(group) == []


class FailingListener(RecordingListener):
    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await super().on_partitions_assigned(assigned)
        raise RuntimeError("restoring state failed")


async def test_listener_errors_surface_from_poll(transport, admin, topic_name):
    await admin.create_topics([TopicSpec(topic_name, 1)])
    listener = FailingListener()
    consumer = transport.consumer(unique_name("failing"), config=FAST_GROUP)
    await consumer.start()
    try:
        consumer.subscribe([topic_name], listener)
        with pytest.raises(RuntimeError, match="restoring state failed"):
            await poll_until(consumer, 1, timeout_s=10)
        # aiokafka reports an empty revocation before the first assignment.
        assert listener.events == [("revoked", set()), ("assigned", {TopicPartition(topic_name, 0)})]
        assert await consumer.poll(timeout_ms=100) == {}
    finally:
        await consumer.stop()


async def test_seek_to_committed_or_reset(transport, admin, topic_name):
    await admin.create_topics([TopicSpec(topic_name, 3)])
    partitions = [TopicPartition(topic_name, p) for p in range(3)]
    producer = transport.producer()
    await producer.start()
    try:
        await producer.send_many([out(topic_name, p, b"%d" % i) for p in range(3) for i in range(4)])
        await producer.flush()
    finally:
        await producer.stop()

    group = unique_name("seek")
    await admin.set_committed_offsets(group, {partitions[0]: 0, partitions[1]: 3})
    assert await admin.committed_offsets(group, partitions) == {partitions[0]: 0, partitions[1]: 3, partitions[2]: None}

    # With reset "latest", offset 0 must still mean "from the start", not "no commit".
    consumer = transport.consumer(group, config={"auto_offset_reset": "latest"})
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_committed_or_reset(partitions)
        records = await poll_until(consumer, 5, timeout_s=3)
        consumer.seek(partitions[2], 1)
        records += await poll_until(consumer, 3)
        assert await consumer.beginning_offsets(partitions) == {tp: 0 for tp in partitions}
        assert await consumer.end_offsets(partitions) == {tp: 4 for tp in partitions}
    finally:
        await consumer.stop()
    expected = [(0, 0), (0, 1), (0, 2), (0, 3), (1, 3), (2, 1), (2, 2), (2, 3)]
    assert sorted((r.partition, r.offset) for r in records) == expected


async def test_caught_up_after_polling_to_the_end(transport, admin, topic_name):
    await admin.create_topics([TopicSpec(topic_name, 2)])
    p0, p1 = TopicPartition(topic_name, 0), TopicPartition(topic_name, 1)
    producer = transport.producer()
    await producer.start()
    try:
        await producer.send_many([out(topic_name, 0, b"%d" % i) for i in range(5)])
        await producer.flush()
    finally:
        await producer.stop()
    consumer = transport.consumer(None, config={"max_partition_fetch_bytes": 64})
    await consumer.start()
    try:
        consumer.assign([p0, p1])
        await consumer.seek_to_committed_or_reset([p0, p1])
        assert await consumer.caught_up([p0, p1]) == set()  # no fetch answered yet: the ends are unknown
        first = await consumer.poll(timeout_ms=5_000, max_records=1)
        assert sum(map(len, first.values())) == 1
        assert p0 not in await consumer.caught_up([p0, p1])  # four records of p0 are still to come
        assert len(await poll_until(consumer, 4)) == 4
        assert await wait_for(lambda: consumer.caught_up([p0, p1]))
        assert await consumer.caught_up([p0, p1]) == {p0, p1}
    finally:
        await consumer.stop()


async def test_pause_and_resume(transport, admin, topic_name):
    await admin.create_topics([TopicSpec(topic_name, 2)])
    p0, p1 = TopicPartition(topic_name, 0), TopicPartition(topic_name, 1)
    producer = transport.producer()
    await producer.start()
    try:
        await producer.send_many([out(topic_name, 0, b"a"), out(topic_name, 1, b"b")])
        await producer.flush()
    finally:
        await producer.stop()
    consumer = transport.consumer(None)
    await consumer.start()
    try:
        consumer.assign([p0, p1])
        consumer.pause([p1])
        first = await poll_until(consumer, 1)
        assert await consumer.poll(timeout_ms=300) == {}
        consumer.resume([p1])
        second = await poll_until(consumer, 1)
    finally:
        await consumer.stop()
    assert [r.partition for r in first] == [0]
    assert [r.partition for r in second] == [1]


class FirstUserDataTakesAll:
    """Gives every partition to the member whose user_data sorts first; the others get no answer."""

    name = "first-user-data-takes-all"

    def __init__(self, user_data: bytes) -> None:
        self.user_data = user_data
        self.seen_members: dict[str, MemberSubscription] = {}
        self.assignments: list[MemberAssignment] = []

    def subscription_user_data(self) -> bytes:
        return self.user_data

    def assign(
        self, members: Mapping[str, MemberSubscription], partitions_per_topic: Mapping[str, int]
    ) -> dict[str, MemberAssignment]:
        self.seen_members = dict(members)
        winner = min(members, key=lambda member_id: members[member_id].user_data)
        everything = tuple(
            TopicPartition(topic, p) for topic, count in partitions_per_topic.items() for p in range(count)
        )
        return {winner: MemberAssignment(everything, b"winner=" + members[winner].user_data)}

    def on_assignment(self, assignment: MemberAssignment) -> None:
        self.assignments.append(assignment)


async def test_group_assignor_user_data_travels_and_assignment_is_respected(transport, admin, topic_name):
    await admin.create_topics([TopicSpec(topic_name, 4)])
    everything = {TopicPartition(topic_name, p) for p in range(4)}
    group = unique_name("assignor")
    late_assignor, early_assignor = FirstUserDataTakesAll(b"a-late"), FirstUserDataTakesAll(b"b-early")
    early = transport.consumer(group, assignor=early_assignor, config=FAST_GROUP)
    late = transport.consumer(group, assignor=late_assignor, config=FAST_GROUP)
    await early.start()
    try:
        early.subscribe([topic_name], RecordingListener())
        assert await wait_for(lambda: early.assignment() == everything)
        assert early_assignor.assignments[-1] == MemberAssignment(tuple(sorted(everything)), b"winner=b-early")

        await late.start()
        try:
            late.subscribe([topic_name], RecordingListener())
            assert await wait_for(lambda: late.assignment() == everything and early.assignment() == set())
            members = {early.group_metadata().member_id, late.group_metadata().member_id}
            (leader_view,) = [
                a.seen_members for a in (early_assignor, late_assignor) if a.seen_members.keys() == members
            ]
            assert sorted(m.user_data for m in leader_view.values()) == [b"a-late", b"b-early"]
            assert all(m.topics == (topic_name,) for m in leader_view.values())
            assert late_assignor.assignments[-1] == MemberAssignment(tuple(sorted(everything)), b"winner=a-late")
            assert early_assignor.assignments[-1] == MemberAssignment((), b"")
            assert len(await admin.active_members(group)) == 2
        finally:
            await late.stop()
        assert await wait_for(lambda: early.assignment() == everything)
    finally:
        await early.stop()


async def test_create_topics_is_idempotent_and_describe_reports_config(admin, topic_name):
    compacted, plain, missing = f"{topic_name}-c", f"{topic_name}-p", f"{topic_name}-missing"
    specs = [TopicSpec(compacted, 3, config={"cleanup.policy": "compact"}), TopicSpec(plain, 1)]
    await admin.create_topics(specs)
    await admin.create_topics(specs)
    await admin.create_topics([TopicSpec(compacted, 5)])
    info = await admin.describe_topics([compacted, plain, missing])
    assert info[missing] is None
    assert (info[compacted].name, info[compacted].partitions) == (compacted, 3)
    assert info[compacted].config["cleanup.policy"] == "compact"
    assert info[plain].partitions == 1
    assert info[plain].config["cleanup.policy"] == "delete"
    assert await admin.describe_topics([]) == {}

    await admin.delete_topics([plain, missing])
    assert (await admin.describe_topics([plain]))[plain] is None
    assert (await admin.describe_topics([missing]))[missing] is None, "describing must not auto-create"


async def test_list_offsets_earliest_latest_and_by_timestamp(transport, admin, topic_name):
    await admin.create_topics([TopicSpec(topic_name, 2)])
    p0, p1 = TopicPartition(topic_name, 0), TopicPartition(topic_name, 1)
    producer = transport.producer()
    await producer.start()
    try:
        await producer.send_many(out(topic_name, 0, b"x", timestamp=BASE + ts) for ts in (1_000, 2_000, 3_000))
        await producer.send_many([out(topic_name, 1, b"y", timestamp=BASE + 500)])
        await producer.flush()
    finally:
        await producer.stop()
    assert await admin.list_offsets([p0, p1], "earliest") == {p0: 0, p1: 0}
    assert await admin.list_offsets([p0, p1], "latest") == {p0: 3, p1: 1}
    assert await admin.list_offsets([p0, p1], BASE + 1_500) == {p0: 1, p1: 1}
    assert await admin.list_offsets([p0, p1], BASE + 2_000) == {p0: 1, p1: 1}
    assert await admin.list_offsets([p0, p1], BASE) == {p0: 0, p1: 0}
    assert await admin.list_offsets([p0], BASE + 10_000) == {p0: 3}
    assert await admin.list_offsets([], "latest") == {}
    with pytest.raises(ValueError):
        await admin.list_offsets([p0], "newest")


async def test_set_and_read_committed_offsets(transport, admin, topic_name):
    await admin.create_topics([TopicSpec(topic_name, 2)])
    p0, p1 = TopicPartition(topic_name, 0), TopicPartition(topic_name, 1)
    group = unique_name("offsets")
    assert await admin.committed_offsets(group, [p0, p1]) == {p0: None, p1: None}
    await admin.set_committed_offsets(group, {p0: 5})
    assert await admin.committed_offsets(group, [p0, p1]) == {p0: 5, p1: None}
    await admin.set_committed_offsets(group, {p0: 2, p1: 1})
    assert await admin.committed_offsets(group, [p0, p1]) == {p0: 2, p1: 1}
    assert await admin.active_members(group) == []
    consumer = transport.consumer(group)
    await consumer.start()
    try:
        assert await consumer.committed(p1) == 1
    finally:
        await consumer.stop()
