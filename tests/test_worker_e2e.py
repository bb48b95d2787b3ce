"""The worker against the real broker: every operation, repartitioning, errors, timers, agents."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer

from streams import App, TopologyError
from streams.partitioner import partition_for
from tests.conftest import create_topics, unique_name
from tests.kafka_helpers import FAST_GROUP, decoded, produce, read_topic, running, wait_for


def make_app(brokers: str, tmp_path, **kwargs) -> App:
    return App(unique_name("app"), brokers=brokers, state_dir=tmp_path, commit_interval=0.2,
               consumer_config=FAST_GROUP, **kwargs)


async def test_every_stateless_operation(brokers, tmp_path):
    names = {n: unique_name(n) for n in ("in", "even", "odd", "big", "small", "flat", "merged", "dyn-a", "dyn-b")}
    await create_topics(brokers, {t: 2 for t in names.values()})
    seen, each = [], []
    app = make_app(brokers, tmp_path)
    s = app.stream(names["in"])
    s.filter(lambda k, v: v["n"] % 2 == 0).map_values(lambda v: v["n"]).to(names["even"])
    s.filter_not(lambda k, v: v["n"] % 2 == 0).map(lambda k, v: (f"odd-{k}", v["n"])).to(names["odd"])
    branches = s.map_values(lambda v: v["n"]).split({"big": lambda k, v: v >= 5}, default="small")
    branches["big"].peek(lambda k, v: seen.append(v)).to(names["big"])
    branches["small"].select_key(lambda k, v: f"s{v}").to(names["small"])
    s.flat_map(lambda k, v: [(k, v["n"]), (k, -v["n"])]).flat_map_values(lambda v: [v, v]).to(names["flat"])
    s.filter(lambda k, v: v["n"] == 1).merge(s.filter(lambda k, v: v["n"] == 2)).to(names["merged"])
    s.map_values(lambda v: v["n"]).to(lambda k, v: names["dyn-a"] if v < 3 else names["dyn-b"])
    s.foreach(lambda k, v: each.append(k))
    base = int(time.time() * 1000) - 60_000  # recent: the broker's retention deletes old records
    await produce(brokers, names["in"], [(f"k{n}", {"n": n}, base + n) for n in range(8)])
    async with running(app):
        even = await read_topic(brokers, names["even"], expected=4)
        odd = await read_topic(brokers, names["odd"], expected=4)
        big = await read_topic(brokers, names["big"], expected=3)
        small = await read_topic(brokers, names["small"], expected=5)
        flat = await read_topic(brokers, names["flat"], expected=32)
        merged = await read_topic(brokers, names["merged"], expected=2)
        dyn_a = await read_topic(brokers, names["dyn-a"], expected=3)
        dyn_b = await read_topic(brokers, names["dyn-b"], expected=5)
        await wait_for(lambda: len(each) == 8)
    assert sorted(decoded(even)) == [("k0", 0), ("k2", 2), ("k4", 4), ("k6", 6)]
    assert {r.timestamp for r in even} == {base + n for n in (0, 2, 4, 6)}
    assert sorted(decoded(odd)) == [("odd-k1", 1), ("odd-k3", 3), ("odd-k5", 5), ("odd-k7", 7)]
    assert sorted(decoded(big)) == [("k5", 5), ("k6", 6), ("k7", 7)] and sorted(seen) == [5, 6, 7]
    assert sorted(decoded(small)) == [(f"s{n}", n) for n in range(5)]
    assert sorted(decoded(flat)) == sorted((f"k{n}", x) for n in range(8) for x in (n, n, -n, -n))
    assert sorted(decoded(merged)) == [("k1", {"n": 1}), ("k2", {"n": 2})]
    assert sorted(v for _, v in decoded(dyn_a)) == [0, 1, 2] and len(dyn_b) == 5
    assert sorted(each) == [f"k{n}" for n in range(8)]
    for record in even:  # keys land where Kafka's own partitioner would put them
        assert record.partition == partition_for(record.key, 2)


async def test_headers_propagate(brokers, tmp_path):
    src, out = unique_name("in"), unique_name("out")
    await create_topics(brokers, {src: 1, out: 1})
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=brokers)
    await producer.start()
    stamp = int(time.time() * 1000) - 5_000
    await producer.send_and_wait(src, b'{"a": 1}', key=b"k", headers=[("trace", b"abc")], timestamp_ms=stamp)
    await producer.stop()
    app = make_app(brokers, tmp_path)
    app.stream(src).map_values(lambda v: v["a"] + 1).to(out)
    async with running(app):
        [record] = await read_topic(brokers, out, expected=1)
    assert record.headers == (("trace", b"abc"),) or list(record.headers) == [("trace", b"abc")]
    assert record.timestamp == stamp and record.value == b"2"


async def test_repartition_across_subtopologies(brokers, tmp_path):
    src, out = unique_name("in"), unique_name("out")
    await create_topics(brokers, {src: 2, out: 3})
    app = make_app(brokers, tmp_path)
    app.stream(src).select_key(lambda k, v: v["user"]).repartition(name="by-user", partitions=3).map_values(
        lambda v: v["n"]
    ).to(out)
    records = [(f"k{i}", {"user": f"u{i % 5}", "n": i}) for i in range(50)]
    await produce(brokers, src, records)
    async with running(app) as worker:
        got = await read_topic(brokers, out, expected=50)
        assert sorted(worker.plan.tasks) == ["0_0", "0_1", "1_0", "1_1", "1_2"]
    assert sorted(decoded(got), key=lambda kv: kv[1]) == [(f"u{i % 5}", i) for i in range(50)]
    repartition_topic = f"{app.app_id}-by-user-repartition"
    internal = await read_topic(brokers, repartition_topic, expected=50)
    for record in internal:
        assert record.partition == partition_for(record.key, 3)


async def test_malformed_json_goes_to_dlq(brokers, tmp_path):
    src, out = unique_name("in"), unique_name("out")
    await create_topics(brokers, {src: 1, out: 1})
    app = make_app(brokers, tmp_path)
    app.stream(src).map_values(lambda v: v["n"] * 2).to(out)
    await produce(brokers, src, [("a", {"n": 1}), ("bad", b"{oops"), ("c", {"n": 3}), ("d", {"x": 1})])
    async with running(app):
        good = await read_topic(brokers, out, expected=2)
        dead = await read_topic(brokers, f"{app.app_id}-dlq", expected=2)
    assert decoded(good) == [("a", 2), ("c", 6)]
    assert [r.key for r in dead] == [b"bad", b"d"]
    assert dead[0].value == b"{oops"
    headers = dict(dead[0].headers)
    assert headers["streams.error.topic"] == src.encode()
    assert headers["streams.error.partition"] == b"0"
    assert headers["streams.error.offset"] == b"1"
    assert headers["streams.error.type"] == b"JSONDecodeError"
    assert dict(dead[1].headers)["streams.error.type"] == b"KeyError"


async def test_fail_policy_stops_without_committing_past_the_record(brokers, tmp_path):
    src, out = unique_name("in"), unique_name("out")
    await create_topics(brokers, {src: 1, out: 1})
    app = make_app(brokers, tmp_path, on_error="fail")
    app.stream(src).map_values(lambda v: 10 // v).to(out)
    await produce(brokers, src, [("a", 1), ("b", 2)])

    worker = app.create_worker()
    await worker.start()
    loop_task = asyncio.create_task(worker.loop())  # the loop starts the tasks the group assigns
    await wait_for(lambda: worker.tasks)
    await read_topic(brokers, out, expected=2)
    await asyncio.sleep(0.5)  # a commit interval passes: offsets 0-1 are committed
    await produce(brokers, src, [("c", 0), ("d", 5)])
    with pytest.raises(Exception, match=r"\[0\]@2.*ZeroDivisionError"):
        await asyncio.wait_for(loop_task, 20)
    await worker.shutdown(commit=False)
    consumer = AIOKafkaConsumer(bootstrap_servers=brokers, group_id=app.app_id, enable_auto_commit=False)
    await consumer.start()
    from aiokafka import TopicPartition

    committed = await consumer.committed(TopicPartition(src, 0))
    await consumer.stop()
    assert committed == 2


async def test_unknown_topics_fail_at_start_with_names(brokers, tmp_path):
    out = unique_name("out")
    await create_topics(brokers, {out: 1})
    missing_in = unique_name("missing-in")
    app = make_app(brokers, tmp_path)
    app.stream(missing_in).to(out)
    with pytest.raises(TopologyError, match=missing_in):
        async with running(app):
            pass
    src = unique_name("in")
    await create_topics(brokers, {src: 1})
    missing_out = unique_name("missing-out")
    app = make_app(brokers, tmp_path)
    app.stream(src).to(missing_out)
    with pytest.raises(TopologyError, match=missing_out):
        async with running(app):
            pass


async def test_timer_and_agent_in_a_worker(brokers, tmp_path):
    src, out = unique_name("orders"), unique_name("totals")
    await create_topics(brokers, {src: 2, out: 1})
    app = make_app(brokers, tmp_path)
    ticks = []

    @app.timer(0.2)
    async def tick():
        ticks.append(1)

    leader_ticks = []

    @app.timer(0.2, on_leader=True)
    def leader_tick():
        leader_ticks.append(1)

    @app.agent(src, sink=out)
    async def double(stream):
        async for key, value in stream.items():
            yield {"key": key, "double": value * 2}

    await produce(brokers, src, [(f"k{i}", i) for i in range(20)])
    async with running(app):
        got = await read_topic(brokers, out, expected=20)
        await wait_for(lambda: len(ticks) >= 3 and len(leader_ticks) >= 3)
    assert sorted(v["double"] for _, v in decoded(got)) == [i * 2 for i in range(20)]
    assert all(k == v["key"] for k, v in decoded(got))
