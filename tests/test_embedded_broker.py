"""The embedded broker on its own: registry, durability across restarts, groups, transactions, compaction."""

from __future__ import annotations

import asyncio
import logging
import os
import pathlib
import stat
import subprocess
import sys
import textwrap
import threading
import time
import uuid

import pytest
from aiokafka.errors import (
    CorruptRecordException,
    IllegalOperation,
    IllegalStateError,
    MessageSizeTooLargeError,
    ProducerFenced,
    UnknownTopicOrPartitionError,
)

from streams import App
from streams.errors import TaskFencedError
from streams.partitioner import partition_for
from streams.transport import MemberAssignment, MemberSubscription, OutRecord, TopicPartition, TopicSpec
from streams.transport.embedded import BrokerClosedError, BrokerInUseError, EmbeddedTransport, close_broker, open_broker
from streams.transport.kafka import KafkaTransport
from tests.test_conformance import RecordingListener, Target, poll_until, read_all

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def memory_url() -> str:
    url = f"memory://embedded-{uuid.uuid4().hex[:8]}"
    yield url
    close_broker(url)


@pytest.fixture
def local_url(tmp_path) -> str:
    url = f"local://{tmp_path / 'broker'}"
    yield url
    close_broker(url)


def record(topic: str, partition: int, value: bytes | None, key: bytes | None = None, **fields) -> OutRecord:
    return OutRecord(topic, partition, key, value, fields.get("timestamp"), fields.get("headers", ()))


async def started(client):
    await client.start()
    return client


async def setup(url: str, *specs: TopicSpec) -> EmbeddedTransport:
    transport = EmbeddedTransport(url)
    admin = await started(transport.admin())
    await admin.create_topics(specs)
    await admin.stop()
    return transport


async def send(transport: EmbeddedTransport, records: list[OutRecord], **options) -> dict[TopicPartition, int]:
    producer = await started(transport.producer(**options))
    try:
        await producer.send_many(records)
        return await producer.flush()
    finally:
        await producer.stop()


# -- choosing and sharing brokers


def test_app_picks_the_embedded_transport(monkeypatch, memory_url):
    monkeypatch.delenv("STREAMS_BROKERS", raising=False)
    assert isinstance(App("a", brokers=memory_url).transport(), EmbeddedTransport)
    assert isinstance(App("a", brokers="local://somewhere").transport(), EmbeddedTransport)
    assert isinstance(App("a", brokers="127.0.0.1:9092").transport(), KafkaTransport)
    monkeypatch.setenv("STREAMS_BROKERS", memory_url)
    assert App("a", brokers="127.0.0.1:9092").transport().url == memory_url


async def test_one_broker_per_name_shared_by_every_client(memory_url):
    other = memory_url + "-other"
    try:
        transport = await setup(memory_url, TopicSpec("shared", 1))
        assert open_broker(memory_url) is EmbeddedTransport(memory_url).broker is transport.broker
        assert open_broker(other) is not transport.broker
        await send(EmbeddedTransport(memory_url), [record("shared", 0, b"x")])
        assert [r.value for r in await read_all(Target("memory", memory_url, transport), "shared")] == [b"x"]
        admin = await started(EmbeddedTransport(other).admin())
        assert (await admin.describe_topics(["shared"]))["shared"] is None
    finally:
        close_broker(other)


async def test_a_closed_broker_fails_its_clients_and_reopens_for_new_ones(memory_url):
    transport = await setup(memory_url, TopicSpec("t", 1))
    consumer = await started(transport.consumer(None))
    close_broker(memory_url)
    with pytest.raises(BrokerClosedError):
        await consumer.poll(0)
    admin = await started(transport.admin())
    assert (await admin.describe_topics(["t"]))["t"] is None, "a memory broker forgets everything when closed"


# -- local:// durability


async def test_local_broker_survives_a_restart(local_url):
    transport = await setup(local_url, TopicSpec("events", 2), TopicSpec("table", 1, config={
        "cleanup.policy": "compact"}))
    p0, p1, table = TopicPartition("events", 0), TopicPartition("events", 1), TopicPartition("table", 0)
    records = [record("events", i % 2, b"v%d" % i, b"k%d" % i, timestamp=1_000 + i, headers=(("h", b"%d" % i),))
               for i in range(6)]
    await send(transport, records + [record("table", 0, b"old", b"k"), record("table", 0, b"new", b"k")])
    admin = await started(transport.admin())
    await admin.set_committed_offsets("group", {p0: 2, p1: 1})
    producer = await started(transport.producer(transactional_id="tx"))
    await producer.begin_transaction()
    await producer.send_many([record("events", 0, b"never-committed")])
    await producer.flush()
    assert transport.broker.compact(["table"]) == 1
    before = await read_all(Target("local", local_url, transport), "events", 2)
    close_broker(local_url)  # as if the process ended with the transaction open

    again = EmbeddedTransport(local_url)
    target = Target("local", local_url, again)
    admin = await started(again.admin())
    info = await admin.describe_topics(["events", "table"])
    assert (info["events"].partitions, info["table"].config["cleanup.policy"]) == (2, "compact")
    assert await admin.committed_offsets("group", [p0, p1]) == {p0: 2, p1: 1}
    assert [r for r in await read_all(target, "events", 2) if r.value != b"never-committed"] == before[:3] + before[4:]
    assert [(r.offset, r.value) for r in await read_all(target, "table")] == [(1, b"new")]
    committed = await read_all(target, "events", 2, isolation_level="read_committed")
    assert b"never-committed" not in [r.value for r in committed], "an unfinished transaction is aborted on reopen"
    assert await admin.list_offsets([p0, p1, table], "latest") == {p0: 5, p1: 3, table: 2}
    assert await send(again, [record("events", 0, b"next")]) == {p0: 5}, "offsets go on where they stopped"


def modes(root) -> dict[str, int]:
    """Permission bits of root and everything below it, by path relative to root's parent."""
    found = {root.name: stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        found[str(path.relative_to(root.parent))] = stat.S_IMODE(path.stat().st_mode)
    return found


async def test_local_broker_files_are_private_and_a_deleted_database_is_logged(local_url, caplog):
    caplog.set_level(logging.DEBUG, logger="streams.transport.embedded.sqlite")
    transport = await setup(local_url, TopicSpec("events", 1))
    await send(transport, [record("events", 0, b"secret", b"k")])
    directory = pathlib.Path(local_url[len("local://"):])
    found = modes(directory)
    assert {"broker", "broker/streams.db", "broker/streams.db-wal", "broker/broker.lock"} <= set(found)
    assert found == {path: 0o700 if path == "broker" else 0o600 for path in found}
    assert "no streams.db yet; starting an empty broker" in caplog.text
    assert os.umask(0o022) == 0o022, "the umask is restored"

    close_broker(local_url)
    for name in ("streams.db", "streams.db-wal", "streams.db-shm"):
        (directory / name).unlink(missing_ok=True)
    caplog.clear()
    admin = await started(EmbeddedTransport(local_url).admin())
    assert (await admin.describe_topics(["events"]))["events"] is None
    [line] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "streams.db is missing (deleted?); starting an EMPTY broker" in line.getMessage()


async def test_local_broker_in_another_process(local_url, tmp_path):
    path = local_url[len("local://"):]
    child = textwrap.dedent(f"""
        import asyncio
        from streams.transport.embedded import EmbeddedTransport
        from streams.transport import OutRecord, TopicPartition, TopicSpec

        async def main():
            transport = EmbeddedTransport("local://{path}")
            admin = transport.admin()
            await admin.start()
            await admin.create_topics([TopicSpec("from-child", 1)])
            await admin.set_committed_offsets("child-group", {{TopicPartition("from-child", 0): 1}})
            producer = transport.producer()
            await producer.start()
            await producer.send_many([OutRecord("from-child", 0, b"k", b"v%d" % i, 42, ()) for i in range(3)])
            print(await producer.flush())

        asyncio.run(main())
    """)
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stderr
    transport = EmbeddedTransport(local_url)
    admin = await started(transport.admin())
    tp = TopicPartition("from-child", 0)
    assert await admin.committed_offsets("child-group", [tp]) == {tp: 1}
    records = await read_all(Target("local", local_url, transport), "from-child")
    assert [(r.offset, r.key, r.value, r.timestamp) for r in records] == [(i, b"k", b"v%d" % i, 42) for i in range(3)]
    # While this process holds the directory, another one cannot open it.
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode != 0 and BrokerInUseError.__name__ in done.stderr


# -- consumer groups among the consumers of this process


FAST = {"session_timeout_ms": 1000, "heartbeat_interval_ms": 100}


async def wait_until(condition, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_rebalance_between_two_consumers(memory_url):
    transport = await setup(memory_url, TopicSpec("work", 4))
    everything = {TopicPartition("work", p) for p in range(4)}
    await send(transport, [record("work", p, b"%d" % p) for p in range(4)])
    first_listener, second_listener = RecordingListener(), RecordingListener()
    first = transport.consumer("g", config=FAST)
    first.subscribe(["work"], first_listener)
    await first.start()
    await wait_until(lambda: first.assignment() == everything)
    assert len(await poll_until(first, 4)) == 4
    await first.commit({TopicPartition("work", p): 1 for p in range(4)})
    first_generation = first.group_metadata().generation_id

    second = transport.consumer("g", config=FAST)
    second.subscribe(["work"], second_listener)
    await second.start()
    await wait_until(lambda: len(first.assignment()) == 2 and len(second.assignment()) == 2)
    assert first.assignment() | second.assignment() == everything
    assert first.group_metadata().generation_id == second.group_metadata().generation_id == first_generation + 1
    assert first_listener.events == [("revoked", set()), ("assigned", everything), ("revoked", everything),
                                     ("assigned", first.assignment())]
    assert second_listener.events == [("revoked", set()), ("assigned", second.assignment())]
    admin = await started(transport.admin())
    members = [first.group_metadata().member_id, second.group_metadata().member_id]
    assert sorted(await admin.active_members("g")) == sorted(members)

    await send(transport, [record("work", p, b"more") for p in range(4)])
    got = await poll_until(first, 2) + await poll_until(second, 2)
    assert sorted((r.partition, r.offset) for r in got) == [(p, 1) for p in range(4)], "committed offsets resume"

    await second.stop()
    await wait_until(lambda: first.assignment() == everything)
    assert first_listener.events[-2:] == [("revoked", first_listener.events[-3][1]), ("assigned", everything)]
    await first.stop()
    assert await admin.active_members("g") == []


class FirstUserDataTakesAll:
    """Gives every partition to the member whose user_data sorts first."""

    name = "first-user-data-takes-all"

    def __init__(self, user_data: bytes) -> None:
        self.user_data = user_data
        self.seen: dict[str, MemberSubscription] = {}
        self.assignments: list[MemberAssignment] = []

    def subscription_user_data(self) -> bytes:
        return self.user_data

    def assign(self, members, partitions_per_topic):
        self.seen = dict(members)
        winner = min(members, key=lambda m: members[m].user_data)
        everything = tuple(TopicPartition(t, p) for t, n in sorted(partitions_per_topic.items()) for p in range(n))
        return {winner: MemberAssignment(everything, b"winner=" + members[winner].user_data)}

    def on_assignment(self, assignment: MemberAssignment) -> None:
        self.assignments.append(assignment)


async def test_the_leaders_assignor_sees_every_members_user_data(memory_url):
    await setup(memory_url, TopicSpec("t", 3))
    transport = EmbeddedTransport(memory_url)
    early_assignor, late_assignor = FirstUserDataTakesAll(b"b-early"), FirstUserDataTakesAll(b"a-late")
    early = transport.consumer("g", assignor=early_assignor, config=FAST)
    early.subscribe(["t"], RecordingListener())
    await early.start()
    await wait_until(lambda: len(early.assignment()) == 3)
    late = transport.consumer("g", assignor=late_assignor, config=FAST)
    late.subscribe(["t"], RecordingListener())
    await late.start()
    await wait_until(lambda: len(late.assignment()) == 3 and not early.assignment())
    assert sorted(s.user_data for s in early_assignor.seen.values()) == [b"a-late", b"b-early"]
    assert all(s.topics == ("t",) for s in early_assignor.seen.values())
    assert late_assignor.assignments[-1].user_data == b"winner=a-late"
    assert early_assignor.assignments[-1] == MemberAssignment((), b"")
    await late.stop()
    await wait_until(lambda: len(early.assignment()) == 3)
    await early.stop()


async def test_a_member_whose_loop_died_is_expired(memory_url):
    transport = await setup(memory_url, TopicSpec("t", 2))
    ghost_ready = threading.Event()

    def ghost() -> None:  # joins in its own event loop, which then stops without leaving the group
        async def join() -> None:
            consumer = transport.consumer("g", config=FAST)
            consumer.subscribe(["t"], RecordingListener())
            await consumer.start()
            while not consumer.assignment():
                await asyncio.sleep(0.01)
            ghost_ready.set()
            await asyncio.sleep(0.3)

        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(join())
        finally:
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.run_until_complete(asyncio.sleep(0))

    thread = threading.Thread(target=ghost)
    thread.start()
    await asyncio.to_thread(ghost_ready.wait, 5)
    survivor = transport.consumer("g", config=FAST)
    survivor.subscribe(["t"], RecordingListener())
    await survivor.start()
    await asyncio.to_thread(thread.join)
    await wait_until(lambda: len(survivor.assignment()) == 2, timeout_s=5)
    await survivor.stop()


class FailingListener(RecordingListener):
    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await super().on_partitions_assigned(assigned)
        raise RuntimeError("restoring state failed")


async def test_listener_errors_surface_from_poll(memory_url):
    transport = await setup(memory_url, TopicSpec("t", 1))
    listener = FailingListener()
    consumer = await started(transport.consumer("g", config=FAST))
    consumer.subscribe(["t"], listener)
    with pytest.raises(RuntimeError, match="restoring state failed"):
        await poll_until(consumer, 1, timeout_s=5)
    assert listener.events == [("revoked", set()), ("assigned", {TopicPartition("t", 0)})]
    assert await consumer.poll(timeout_ms=50) == {}
    await consumer.stop()


async def test_a_waiting_poll_wakes_for_records_from_another_thread(memory_url):
    transport = await setup(memory_url, TopicSpec("t", 1))
    consumer = await started(transport.consumer(None))
    consumer.assign([TopicPartition("t", 0)])
    started_at = time.monotonic()
    timer = threading.Timer(0.2, lambda: asyncio.run(send(transport, [record("t", 0, b"hello")])))
    timer.start()
    batches = await consumer.poll(5_000)
    assert [r.value for r in batches[TopicPartition("t", 0)]] == [b"hello"]
    assert time.monotonic() - started_at < 2
    timer.join()
    await consumer.stop()


# -- consumers and producers


async def test_positions_pause_and_reset_policies(memory_url):
    transport = await setup(memory_url, TopicSpec("t", 2))
    p0, p1 = TopicPartition("t", 0), TopicPartition("t", 1)
    await send(transport, [record("t", p, b"%d" % i) for p in (0, 1) for i in range(3)])
    consumer = await started(transport.consumer(None, config={"max_poll_records": 2}))
    consumer.assign([p0, p1])
    consumer.pause([p1])
    assert sum(len(b) for b in (await consumer.poll(100)).values()) == 2, "max_poll_records bounds a poll"
    assert {tp for tp in (await consumer.poll(100))} == {p0}
    consumer.resume([p1])
    consumer.seek(p1, 99)  # beyond the end: the reset policy applies
    assert await consumer.position(p1) == 0
    with pytest.raises(IllegalStateError):
        consumer.seek(TopicPartition("t", 7), 0)
    with pytest.raises(IllegalOperation):
        await consumer.committed(p0)
    await consumer.stop()
    latest = await started(transport.consumer(None, config={"auto_offset_reset": "latest"}))
    latest.assign([p0])
    assert await latest.position(p0) == 3
    assert await latest.caught_up([p0]) == {p0}
    await latest.stop()
    reader = await started(transport.consumer(None))
    reader.assign([p0, p1])
    reader.pause([p1])
    assert await reader.caught_up([p0, p1]) == set()
    assert len(await poll_until(reader, 3)) == 3
    assert await reader.caught_up([p0, p1]) == {p0}  # p1's three records are still to be read
    await reader.stop()
    with pytest.raises(TypeError, match="no_such_option"):
        transport.consumer(None, config={"no_such_option": 1})


async def test_send_errors_surface_at_flush_and_spare_other_partitions(memory_url):
    transport = await setup(memory_url, TopicSpec("small", 2, config={"max.message.bytes": "2000"}),
                            TopicSpec("compacted", 1, config={"cleanup.policy": "compact"}))
    producer = await started(transport.producer())
    await producer.send_many([record("small", 0, b"ok"), record("small", 1, b"x" * 10_000)])
    with pytest.raises(MessageSizeTooLargeError):
        await producer.flush()
    await producer.send_many([record("small", 0, b"still-ok"), record("missing", 0, b"x")])
    with pytest.raises(UnknownTopicOrPartitionError):
        await producer.flush()
    await producer.send_many([record("compacted", 0, b"no key")])
    with pytest.raises(CorruptRecordException):
        await producer.flush()
    await producer.send_many([record("small", -1, b"by key", b"user-7") for _ in range(3)])
    placed = await producer.flush()
    await producer.stop()
    by_key = TopicPartition("small", partition_for(b"user-7", 2))
    next_offset = {0: 2, 1: 0}[by_key.partition]  # partition 0 holds "ok" and "still-ok"; 1 got nothing
    assert placed == {by_key: next_offset + 2}, "records without a partition are placed by murmur2 of the key"


async def test_uncommitted_records_are_seen_by_read_uncommitted_only(memory_url):
    transport = await setup(memory_url, TopicSpec("t", 1))
    tp = TopicPartition("t", 0)
    committed = await started(transport.consumer(None, isolation_level="read_committed"))
    everything = await started(transport.consumer(None))
    committed.assign([tp])
    everything.assign([tp])
    producer = await started(transport.producer(transactional_id="tx"))
    with pytest.raises(IllegalOperation):
        await producer.send_many([record("t", 0, b"outside")])
    await producer.begin_transaction()
    with pytest.raises(IllegalStateError):
        await producer.begin_transaction()
    await producer.send_many([record("t", 0, b"pending")])
    assert await committed.poll(50) == {}
    assert [r.value for r in (await everything.poll(50))[tp]] == [b"pending"]
    await producer.stop()  # stopping aborts the open transaction
    assert await committed.poll(50) == {}
    assert await committed.position(tp) == 2, "the reader moved past the aborted record and its marker"
    await committed.stop()
    await everything.stop()


async def test_fencing_error_is_both_task_fenced_and_producer_fenced(memory_url):
    transport = await setup(memory_url, TopicSpec("t", 1))
    zombie = await started(transport.producer(transactional_id="tx"))
    await zombie.begin_transaction()
    await started(transport.producer(transactional_id="tx"))
    for attempt in (zombie.send_many([record("t", 0, b"x")]), zombie.abort_transaction(), zombie.begin_transaction()):
        with pytest.raises(TaskFencedError) as raised:
            await attempt
        assert isinstance(raised.value, ProducerFenced)


# -- compaction


async def test_compaction_on_demand_and_by_the_cleaner(memory_url):
    transport = await setup(memory_url, TopicSpec("table", 1, config={"cleanup.policy": "compact"}),
                            TopicSpec("fast", 1, config={"cleanup.policy": "compact", "segment.ms": "50",
                                                         "min.cleanable.dirty.ratio": "0.5"}),
                            TopicSpec("plain", 1))
    target = Target("memory", memory_url, transport)
    writes = [(b"a", b"1"), (b"b", b"1"), (b"a", b"2"), (b"b", None), (b"c", b"1")]
    await send(transport, [record("table", 0, v, k) for k, v in writes])
    broker = transport.broker
    broker.maybe_clean()
    assert len(await read_all(target, "table")) == 5, "the active segment is never cleaned"
    assert broker.compact(["table"]) == 2
    assert [(r.offset, r.key, r.value) for r in await read_all(target, "table")] == [
        (2, b"a", b"2"), (3, b"b", None), (4, b"c", b"1")]
    assert broker.compact(["table"]) == 0, "tombstones stay for delete.retention.ms"
    assert broker.compact(["table"], expire_tombstones=True) == 1
    with pytest.raises(ValueError, match="not compacted"):
        broker.compact(["plain"])
    with pytest.raises(UnknownTopicOrPartitionError):
        broker.compact(["missing"])
    await send(transport, [record("fast", 0, b"%d" % i, b"k") for i in range(4)])
    await asyncio.sleep(0.1)
    await send(transport, [record("fast", 0, b"last", b"other")])  # rolls the segment
    broker._next_clean = 0
    broker.maybe_clean()
    assert [(r.offset, r.value) for r in await read_all(target, "fast")] == [(3, b"3"), (4, b"last")]
