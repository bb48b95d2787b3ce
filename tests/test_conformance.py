"""The same scenarios against the embedded broker (memory:// and local://) and the real Kafka broker.

Every scenario talks to the broker only through streams' transport protocols,
and asserts the same expected results on each broker; the application
scenarios run the same app with streams' Worker on all three at once and
compare their outputs with each other as well.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from aiokafka.errors import CommitFailedError, ProducerFenced

from streams import App
from streams.errors import GenerationFencedError, TaskFencedError
from streams.partitioner import partition_for
from streams.transport import OutRecord, RawRecord, TopicPartition, TopicSpec
from streams.transport.base import GroupMetadata
from streams.transport.embedded import EmbeddedTransport, close_broker
from streams.transport.kafka import KafkaTransport
from tests.conftest import unique_name
from tests.kafka_helpers import FAST_GROUP, running

KINDS = ("memory", "local", "kafka")
FENCED = (TaskFencedError, ProducerFenced)


@dataclass
class Target:
    """One broker under test, reached through its transport."""

    kind: str
    url: str
    transport: Any


def make_target(kind: str, request: pytest.FixtureRequest, tmp_path) -> Target:
    if kind == "kafka":
        brokers = request.getfixturevalue("brokers")
        return Target(kind, brokers, KafkaTransport(brokers))
    url = f"memory://conformance-{uuid.uuid4().hex[:8]}" if kind == "memory" else f"local://{tmp_path / 'broker'}"
    return Target(kind, url, EmbeddedTransport(url))


@pytest.fixture(params=KINDS)
def target(request, tmp_path) -> Target:
    made = make_target(request.param, request, tmp_path)
    yield made
    if made.kind != "kafka":
        close_broker(made.url)


@pytest.fixture
def targets(request, tmp_path) -> list[Target]:
    made = [make_target(kind, request, tmp_path / kind) for kind in KINDS]
    yield made
    for one in made:
        if one.kind != "kafka":
            close_broker(one.url)


# -- helpers, all through the transport protocols


async def started(client: Any) -> Any:
    await client.start()
    return client


async def create(target: Target, *specs: TopicSpec) -> None:
    admin = await started(target.transport.admin())
    try:
        await admin.create_topics(specs)
    finally:
        await admin.stop()


async def produce(target: Target, records: Iterable[OutRecord], **producer_options) -> dict[TopicPartition, int]:
    producer = await started(target.transport.producer(**producer_options))
    try:
        await producer.send_many(records)
        return await producer.flush()
    finally:
        await producer.stop()


async def read_all(target: Target, topic: str, partitions: int = 1,
                   isolation_level: str = "read_uncommitted") -> list[RawRecord]:
    """Every record from the beginning to the end offsets as this reader sees them, in partition order."""
    consumer = await started(target.transport.consumer(None, isolation_level=isolation_level))
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    try:
        consumer.assign(tps)
        await consumer.seek_to_committed_or_reset(tps)
        ends = await consumer.end_offsets(tps)
        records: list[RawRecord] = []
        deadline = time.monotonic() + 15
        while any([await consumer.position(tp) < ends[tp] for tp in tps]) and time.monotonic() < deadline:
            for batch in (await consumer.poll(200)).values():
                records.extend(batch)
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        await consumer.stop()


async def collect(target: Target, topic: str, partitions: int, done: Callable[[list[RawRecord]], bool],
                  timeout: float = 30.0) -> list[RawRecord]:
    """Read a topic from the beginning until `done(records)` holds."""
    consumer = await started(target.transport.consumer(None))
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    records: list[RawRecord] = []
    try:
        consumer.assign(tps)
        await consumer.seek_to_committed_or_reset(tps)
        deadline = time.monotonic() + timeout
        while not done(records):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{target.kind}: {topic} has {len(records)} records, not the expected ones")
            for batch in (await consumer.poll(200)).values():
                records.extend(batch)
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        await consumer.stop()


async def poll_until(consumer: Any, count: int, timeout_s: float = 20.0) -> list[RawRecord]:
    records: list[RawRecord] = []
    deadline = time.monotonic() + timeout_s
    while len(records) < count and time.monotonic() < deadline:
        for batch in (await consumer.poll(200)).values():
            records.extend(batch)
    return records


async def eventually(condition: Callable[[], Any], timeout_s: float = 20.0) -> Any:
    """Await condition() until it returns something truthy; returns that."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await condition()
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.3)


def now_ms() -> int:
    return int(time.time() * 1000)


def keyed(topic: str, partitions: int, key: str | None, value: Any, timestamp: int | None = None,
          headers: tuple = ()) -> OutRecord:
    """A record placed by key as Kafka's default partitioner (and streams' runtime) would place it."""
    raw_key = key.encode() if key is not None else None
    raw_value = value if value is None or isinstance(value, bytes) else orjson.dumps(value)
    partition = partition_for(raw_key, partitions) if raw_key is not None else 0
    return OutRecord(topic, partition, raw_key, raw_value, timestamp, headers)


def shape(records: Iterable[RawRecord]) -> list[tuple]:
    """What must match between brokers: coordinates and contents, not topic names."""
    return [(r.partition, r.offset, r.key, r.value, r.timestamp, tuple(r.headers)) for r in records]


# -- broker primitives, parametrized over the three brokers


async def test_keys_headers_timestamps_and_partitioning(target):
    topic = unique_name("records")
    await create(target, TopicSpec(topic, 3))
    await create(target, TopicSpec(topic, 5))  # an existing topic is left alone
    base = now_ms() - 60_000
    records = []
    for i in range(30):
        key = None if i % 10 == 9 else f"key-{i % 7}"
        headers = () if i % 4 == 0 else (("n", b"%d" % i), ("dup", b"a"), ("dup", b""))
        record = keyed(topic, 3, key, None if i == 5 else {"i": i}, base + i, headers)
        records.append(record._replace(partition=i % 3) if key is None else record)
    flushed = await produce(target, records)

    got = await read_all(target, topic, 3)
    expected = []
    for partition in range(3):
        mine = [r for r in records if r.partition == partition]
        expected += [(partition, offset, r.key, r.value, r.timestamp, r.headers) for offset, r in enumerate(mine)]
    assert shape(got) == expected
    assert flushed == {TopicPartition(topic, p): sum(r.partition == p for r in records) - 1 for p in range(3)}
    admin = await started(target.transport.admin())
    try:
        info = await admin.describe_topics([topic, f"{topic}-missing"])
        assert info[f"{topic}-missing"] is None
        assert (info[topic].partitions, info[topic].config["cleanup.policy"]) == (3, "delete")
        tps = [TopicPartition(topic, p) for p in range(3)]
        assert await admin.list_offsets(tps, "earliest") == {tp: 0 for tp in tps}
        assert await admin.list_offsets(tps, "latest") == {tp: flushed[tp] + 1 for tp in tps}
        await admin.delete_topics([topic])
        assert (await admin.describe_topics([topic]))[topic] is None
    finally:
        await admin.stop()


class RecordingListener:
    def __init__(self) -> None:
        self.events: list[tuple[str, set[TopicPartition]]] = []

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.events.append(("revoked", revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.events.append(("assigned", assigned))


async def test_committed_offsets_of_a_group(target):
    topic, group = unique_name("offsets"), unique_name("group")
    await create(target, TopicSpec(topic, 2))
    p0, p1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    await produce(target, [OutRecord(topic, p, None, b"%d" % i, None, ()) for p in (0, 1) for i in range(3)])
    admin = await started(target.transport.admin())
    consumer = target.transport.consumer(group, config=FAST_GROUP)
    try:
        assert await admin.committed_offsets(group, [p0, p1]) == {p0: None, p1: None}
        await admin.set_committed_offsets(group, {p0: 1})
        listener = RecordingListener()
        consumer.subscribe([topic], listener)
        await consumer.start()
        records = await poll_until(consumer, 5)
        assert sorted((r.partition, r.offset) for r in records) == [(0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
        assert listener.events == [("revoked", set()), ("assigned", {p0, p1})]
        metadata = consumer.group_metadata()
        member_id = metadata.member_id
        assert member_id and metadata.generation_id >= 1 and metadata.group_id == group
        assert await admin.active_members(group) == [member_id]
        await consumer.commit({p0: 3, p1: 2})
        assert await consumer.committed(p1) == 2
        with pytest.raises(CommitFailedError):
            await admin.set_committed_offsets(group, {p0: 0})
    finally:
        await consumer.stop()
    try:
        assert await eventually(lambda: _no_members(admin, group))
        assert await admin.committed_offsets(group, [p0, p1]) == {p0: 3, p1: 2}
        # With reset "latest", a committed 0 must still mean "from offset 0".
        await admin.set_committed_offsets(group, {p0: 0})
        reader = await started(target.transport.consumer(group, config={"auto_offset_reset": "latest"}))
        try:
            reader.assign([p0, p1])
            await reader.seek_to_committed_or_reset([p0, p1])
            assert (await reader.position(p0), await reader.position(p1)) == (0, 2)
            assert sorted((r.partition, r.offset) for r in await poll_until(reader, 4)) == [
                (0, 0), (0, 1), (0, 2), (1, 2)]
        finally:
            await reader.stop()
    finally:
        await admin.stop()


async def _no_members(admin: Any, group: str) -> bool:
    return await admin.active_members(group) == []


async def test_offsets_by_time(target):
    topic = unique_name("times")
    await create(target, TopicSpec(topic, 2))
    p0, p1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    base = now_ms() - 60_000
    await produce(target, [OutRecord(topic, 0, None, b"x", base + ts, ()) for ts in (1_000, 2_000, 3_000)]
                  + [OutRecord(topic, 1, None, b"y", base + 500, ())])
    admin = await started(target.transport.admin())
    try:
        assert await admin.list_offsets([p0, p1], "earliest") == {p0: 0, p1: 0}
        assert await admin.list_offsets([p0, p1], "latest") == {p0: 3, p1: 1}
        assert await admin.list_offsets([p0, p1], base + 1_500) == {p0: 1, p1: 1}
        assert await admin.list_offsets([p0, p1], base + 2_000) == {p0: 1, p1: 1}
        assert await admin.list_offsets([p0, p1], base) == {p0: 0, p1: 0}
        assert await admin.list_offsets([p0], base + 10_000) == {p0: 3}
        assert await admin.list_offsets([], "latest") == {}
        with pytest.raises(ValueError):
            await admin.list_offsets([p0], "newest")
    finally:
        await admin.stop()


COMPACT_FAST = {"cleanup.policy": "compact", "segment.ms": "100", "min.cleanable.dirty.ratio": "0.001",
                "delete.retention.ms": "100"}


async def test_compaction_keeps_the_latest_per_key_then_drops_tombstones(target):
    topic = unique_name("compacted")
    await create(target, TopicSpec(topic, 1, config=COMPACT_FAST))

    def record(key: bytes, value: bytes | None) -> OutRecord:
        return OutRecord(topic, 0, key, value, None, ())

    await produce(target, [record(b"k1", b"a"), record(b"k2", b"b"), record(b"k1", None), record(b"k2", b"c")])
    await asyncio.sleep(0.3)
    await produce(target, [record(b"z", b"x")])  # rolls the segment: what came before becomes cleanable

    async def contents() -> list[tuple]:
        return [(r.offset, r.key, r.value) for r in await read_all(target, topic)]

    first_pass = [(2, b"k1", None), (3, b"k2", b"c"), (4, b"z", b"x")]
    assert await eventually(lambda: _equals(contents, first_pass)), await contents()
    await asyncio.sleep(0.3)  # past delete.retention.ms: the next cleaning drops the tombstone
    await produce(target, [record(b"y1", b"x")])
    await asyncio.sleep(0.3)
    await produce(target, [record(b"y2", b"x")])
    second_pass = [(3, b"k2", b"c"), (4, b"z", b"x"), (5, b"y1", b"x"), (6, b"y2", b"x")]
    assert await eventually(lambda: _equals(contents, second_pass)), await contents()
    consumer = await started(target.transport.consumer(None))
    try:
        tp = TopicPartition(topic, 0)
        assert await consumer.beginning_offsets([tp]) == {tp: 0}, "compaction leaves the log start offset"
        assert await consumer.end_offsets([tp]) == {tp: 7}
    finally:
        await consumer.stop()


async def _equals(read: Callable[[], Any], expected: list) -> bool:
    return await read() == expected


def padded(i: int) -> bytes:
    return (b"c%d" % i).ljust(100, b".")


async def test_transactions_commit_and_abort_visibility(target):
    sink, source = unique_name("txn-out"), unique_name("txn-in")
    await create(target, TopicSpec(sink, 2), TopicSpec(source, 1))
    s0, s1, src = TopicPartition(sink, 0), TopicPartition(sink, 1), TopicPartition(source, 0)
    group = unique_name("txn-group")

    def out(partition: int, value: bytes) -> OutRecord:
        return OutRecord(sink, partition, None, value, None, ())

    producer = await started(target.transport.producer(transactional_id=unique_name("txn")))
    committed_reader = await started(target.transport.consumer(None, isolation_level="read_committed"))
    everything_reader = await started(target.transport.consumer(None))
    try:
        await producer.begin_transaction()
        await producer.send_many([out(0, padded(i)) for i in range(20)] + [out(1, b"c1")])
        assert await producer.flush() == {s0: 19, s1: 0}
        await producer.send_offsets_to_transaction({src: 7}, group)
        await producer.commit_transaction()

        await producer.begin_transaction()
        await producer.send_many([out(0, b"aborted"), out(1, b"aborted")])
        await producer.send_offsets_to_transaction({src: 99}, group)
        await producer.abort_transaction()

        await producer.begin_transaction()
        await producer.send_many([out(0, b"last")])
        # 0-19 committed, 20 commit marker, 21 aborted, 22 abort marker: control records take offsets.
        assert await producer.flush() == {s0: 23}
        # While the transaction is open, read_committed readers stop at its first record.
        assert await committed_reader.end_offsets([s0]) == {s0: 23}
        assert await everything_reader.end_offsets([s0]) == {s0: 24}
        await producer.commit_transaction()

        await producer.begin_transaction()
        await producer.send_many([out(1, b"unflushed-then-committed")])
        await producer.commit_transaction()
        assert await producer.flush() == {}
        # Kafka writes the commit markers just after commit_transaction returns.
        ends = {s0: 25, s1: 6}
        assert await eventually(lambda: _equals(lambda: everything_reader.end_offsets([s0, s1]), ends))
    finally:
        await producer.stop()
        await committed_reader.stop()
        await everything_reader.stop()

    async def visible() -> list[tuple]:
        return [(r.partition, r.offset, r.value) for r in await read_all(target, sink, 2, "read_committed")]

    expected = [(0, i, padded(i)) for i in range(20)]
    expected += [(0, 23, b"last"), (1, 0, b"c1"), (1, 4, b"unflushed-then-committed")]
    assert await eventually(lambda: _equals(visible, expected)), await visible()
    everything = await read_all(target, sink, 2)
    assert [(r.partition, r.offset) for r in everything if r.value == b"aborted"] == [(0, 21), (1, 2)]
    admin = await started(target.transport.admin())
    try:
        assert await admin.committed_offsets(group, [src]) == {src: 7}
    finally:
        await admin.stop()


async def test_offsets_with_group_metadata_are_unstable_while_pending_and_fenced_by_generation(target):
    topic, group = unique_name("kip447"), unique_name("group")
    await create(target, TopicSpec(topic, 2))
    src = TopicPartition(topic, 0)
    await produce(target, [OutRecord(topic, 0, None, b"%d" % i, None, ()) for i in range(6)])
    first = target.transport.consumer(group, isolation_level="read_committed", config=FAST_GROUP)
    second = target.transport.consumer(group, isolation_level="read_committed", config=FAST_GROUP)
    reader = await started(target.transport.consumer(group, isolation_level="read_committed"))
    producer = await started(target.transport.producer(transactional_id=unique_name("txn")))
    try:
        first.subscribe([topic], RecordingListener())
        await first.start()
        await eventually(lambda: _member_of(first))
        reader.assign([src])
        await producer.begin_transaction()
        await producer.send_offsets_to_transaction({src: 2}, first.group_metadata())
        assert await reader.seek_to_committed_or_reset([src]) == {src}, "an open transaction holds its offset"
        await producer.commit_transaction()
        assert await eventually(lambda: _stable(reader, src))  # Kafka writes the markers just after commit
        assert await reader.position(src) == 2

        stale = first.group_metadata()
        second.subscribe([topic], RecordingListener())
        await second.start()
        assert await eventually(lambda: _newer_generation(first, second, stale.generation_id))
        for fenced in (stale, GroupMetadata(group, "", -1)):  # an older generation; a membership that lapsed
            await producer.begin_transaction()
            with pytest.raises(GenerationFencedError):
                await producer.send_offsets_to_transaction({src: 5}, fenced)
            await producer.abort_transaction()
        await producer.begin_transaction()
        await producer.send_offsets_to_transaction({src: 4}, first.group_metadata())
        await producer.commit_transaction()
        assert await eventually(lambda: _stable(reader, src))
        assert await reader.position(src) == 4
    finally:
        for client in (producer, reader, second, first):
            await client.stop()


async def _stable(reader: Any, tp: TopicPartition) -> bool:
    return await reader.seek_to_committed_or_reset([tp]) == set()


async def _member_of(consumer: Any) -> bool:
    await consumer.poll(100)
    return consumer.group_metadata().generation_id > 0


async def _newer_generation(first: Any, second: Any, than: int) -> bool:
    await asyncio.gather(first.poll(100), second.poll(100))
    generation = first.group_metadata().generation_id
    return generation > than and second.group_metadata().generation_id == generation


async def test_a_second_producer_with_the_same_transactional_id_fences_the_first(target):
    topic, transactional_id = unique_name("fence"), unique_name("txn")
    await create(target, TopicSpec(topic, 1))
    first = await started(target.transport.producer(transactional_id=transactional_id))
    second = target.transport.producer(transactional_id=transactional_id)
    try:
        await first.begin_transaction()
        await first.send_many([OutRecord(topic, 0, None, b"zombie", None, ())])
        await first.flush()
        await second.start()  # fences `first` and aborts its open transaction
        with pytest.raises(FENCED):
            await first.send_many([OutRecord(topic, 0, None, b"late", None, ())])
            await first.flush()
        with pytest.raises(FENCED):
            await first.commit_transaction()
        await second.begin_transaction()
        await second.send_many([OutRecord(topic, 0, None, b"winner", None, ())])
        await second.commit_transaction()
    finally:
        await first.stop()
        await second.stop()
    async def visible() -> list[tuple]:
        return [(r.offset, r.value) for r in await read_all(target, topic, isolation_level="read_committed")]

    assert await eventually(lambda: _equals(visible, [(2, b"winner")])), await visible()


# -- whole applications run by streams' Worker, on the three brokers at once


def app_on(target: Target, tmp_path, **options) -> App:
    app = App(unique_name(f"conf-{target.kind}"), state_dir=tmp_path / target.kind, commit_interval=0.2,
              consumer_config=FAST_GROUP, **options)
    app.configure(brokers=target.url)
    return app


async def on_all(targets: list[Target], scenario: Callable[[Target], Any]) -> list[Any]:
    """Run the scenario on every broker concurrently; returns the results in KINDS order."""
    return await asyncio.gather(*(scenario(t) for t in targets))


def assert_identical(results: list[Any]) -> None:
    for kind, result in zip(KINDS[1:], results[1:], strict=True):
        assert result == results[0], f"{kind} differs from {KINDS[0]}"


async def test_app_stateless_pipeline(targets, tmp_path):
    base = now_ms() - 60_000

    async def scenario(target: Target) -> list[tuple]:
        src, out = unique_name("pipe-in"), unique_name("pipe-out")
        await create(target, TopicSpec(src, 2), TopicSpec(out, 2))
        app = app_on(target, tmp_path)
        app.stream(src).filter(lambda k, v: v["n"] % 3 != 0).flat_map(
            lambda k, v: [(f"{k}-a", v["n"]), (f"{k}-b", -v["n"])]).to(out)
        await produce(target, [keyed(src, 2, f"k{n}", {"n": n}, base + n, (("trace", b"t%d" % n),))
                               for n in range(12)])
        async with running(app):
            got = await collect(target, out, 2, lambda rs: len(rs) >= 16)
        return [(r.partition, r.key, r.value, r.timestamp, tuple(r.headers))
                for r in sorted(got, key=lambda r: (r.partition, r.key))]

    results = await on_all(targets, scenario)
    assert_identical(results)
    expected = sorted(
        (partition_for(f"k{n}-{s}".encode(), 2), f"k{n}-{s}".encode(), b"%d" % (n if s == "a" else -n), base + n,
         (("trace", b"t%d" % n),))
        for n in range(12) if n % 3 for s in "ab"
    )
    assert results[0] == expected


async def test_app_repartition(targets, tmp_path):
    async def scenario(target: Target) -> tuple[list, list]:
        src, out = unique_name("rep-in"), unique_name("rep-out")
        await create(target, TopicSpec(src, 2), TopicSpec(out, 3))
        app = app_on(target, tmp_path)
        app.stream(src).select_key(lambda k, v: v["user"]).repartition(name="by-user", partitions=3).map_values(
            lambda v: v["n"]).to(out)
        await produce(target, [keyed(src, 2, f"k{i}", {"user": f"u{i % 5}", "n": i}) for i in range(40)])
        async with running(app) as worker:
            got = await collect(target, out, 3, lambda rs: len(rs) >= 40)
            tasks = sorted(worker.plan.tasks)
        internal = await read_all(target, f"{app.app_id}-by-user-repartition", 3)
        return (tasks, sorted((r.partition, r.key, r.value) for r in got),
                sorted((r.partition, r.key) for r in internal))

    results = await on_all(targets, scenario)
    assert_identical(results)
    tasks, outputs, internal = results[0]
    assert tasks == ["0_0", "0_1", "1_0", "1_1", "1_2"]
    assert outputs == sorted((partition_for(f"u{i % 5}".encode(), 3), f"u{i % 5}".encode(), b"%d" % i)
                             for i in range(40))
    assert internal == [(p, k) for p, k, _ in outputs]


async def test_app_count_with_group_by(targets, tmp_path):
    events = [(f"e{i}", {"user": f"u{i % 4}", "page": i % 3}) for i in range(30)]
    expected = {f"u{u}": sum(1 for _, e in events if e["user"] == f"u{u}") for u in range(4)}

    def latest(records: list[RawRecord]) -> dict[str, tuple[int, int]]:
        return {r.key.decode(): (r.partition, orjson.loads(r.value)) for r in records}

    async def scenario(target: Target) -> tuple[dict, dict, dict]:
        src, out = unique_name("count-in"), unique_name("count-out")
        await create(target, TopicSpec(src, 2), TopicSpec(out, 2))
        app = app_on(target, tmp_path)
        app.stream(src).group_by(lambda k, v: v["user"], name="by-user").count(name="counts").to_stream().to(out)
        await produce(target, [keyed(src, 2, k, v) for k, v in events])
        async with running(app):
            got = await collect(target, out, 2, lambda rs: {k: n for k, (_, n) in latest(rs).items()} == expected)
            await asyncio.sleep(0.5)  # a commit interval: the store and its changelog hold the final counts
            store = dict(app.store("counts").items())
        changelog = await read_all(target, f"{app.app_id}-counts-changelog", 2)
        return latest(got), store, {k: n for k, (_, n) in latest(changelog).items()}

    results = await on_all(targets, scenario)
    assert_identical(results)
    output, store, changelog = results[0]
    assert output == {user: (partition_for(user.encode(), 2), n) for user, n in expected.items()}
    assert store == expected and changelog == expected


async def test_app_dead_letter_queue(targets, tmp_path):
    async def scenario(target: Target) -> tuple[list, list]:
        src, out = unique_name("dlq-in"), unique_name("dlq-out")
        await create(target, TopicSpec(src, 1), TopicSpec(out, 1))
        app = app_on(target, tmp_path)
        app.stream(src).map_values(lambda v: v["n"] * 2).to(out)
        await produce(target, [keyed(src, 1, "a", {"n": 1}), keyed(src, 1, "bad", b"{oops"),
                               keyed(src, 1, "c", {"n": 3}), keyed(src, 1, "d", {"x": 1})])
        async with running(app):
            good = await collect(target, out, 1, lambda rs: len(rs) >= 2)
            dead = await collect(target, app.config.dlq_topic, 1, lambda rs: len(rs) >= 2)
        kept = ("streams.error.partition", "streams.error.offset", "streams.error.type")
        return ([(r.key, r.value) for r in good],
                [(r.key, r.value, [(n, v) for n, v in r.headers if n in kept]) for r in dead])

    results = await on_all(targets, scenario)
    assert_identical(results)
    good, dead = results[0]
    assert good == [(b"a", b"2"), (b"c", b"6")]
    assert dead == [
        (b"bad", b"{oops", [("streams.error.partition", b"0"), ("streams.error.offset", b"1"),
                            ("streams.error.type", b"JSONDecodeError")]),
        (b"d", b'{"x":1}', [("streams.error.partition", b"0"), ("streams.error.offset", b"3"),
                            ("streams.error.type", b"KeyError")]),
    ]
