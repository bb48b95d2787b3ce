"""Topics as declarations and sending, on the embedded broker and on Kafka.

Declared topics are created at start, a smaller existing one is refused with both
counts, an undeclared missing one is named with the line that declares it; sends
come from agents, timers, crontabs, start-up tasks, scripts and the run handle,
placed by murmur2; under exactly-once an agent's send commits and aborts with
the record's offsets; a record routed to a missing topic goes to the DLQ alone.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from streams import TestDriver, TopologyError
from streams.partitioner import partition_for
from streams.runtime.scheduler import ManualClock
from streams.transport import TopicPartition, TopicSpec
from tests.brokers_helpers import make_app
from tests.conftest import unique_name


async def admin_of(app):
    admin = app.transport().admin()
    await admin.start()
    return admin


async def test_declared_topics_are_created_at_start(broker_url, tmp_path):
    app = make_app(broker_url, tmp_path)
    src = app.topic(unique_name("in"), partitions=3)
    table = app.topic(unique_name("table"), partitions=3, config={"cleanup.policy": "compact"})
    out = app.topic(unique_name("out"), partitions=2)
    app.stream(src).to(out)
    app.table(table)
    async with app.running():
        admin = await admin_of(app)
        info = await admin.describe_topics([src.name, table.name, out.name])
        await admin.stop()
    assert {name: i.partitions for name, i in info.items()} == {src.name: 3, table.name: 3, out.name: 2}
    assert info[table.name].config["cleanup.policy"] == "compact"


async def test_a_declared_topic_with_fewer_partitions_is_an_error(broker_url, tmp_path):
    app = make_app(broker_url, tmp_path)
    name = unique_name("small")
    admin = await admin_of(app)
    await admin.create_topics([TopicSpec(name, 2)])
    await admin.stop()
    app.stream(app.topic(name, partitions=4)).foreach(print)
    with pytest.raises(TopologyError, match=rf"topic '{name}' has 2 partitions but is declared with 4") as caught:
        async with app.running():
            pass
    assert f'app.topic("{name}", partitions=2)' in caught.value.hint


async def test_an_undeclared_missing_topic_is_named_with_the_line_that_declares_it(broker_url, tmp_path):
    app = make_app(broker_url, tmp_path)
    missing_in, missing_out = unique_name("nowhere-in"), unique_name("nowhere-out")
    app.stream(missing_in).to(missing_out)
    with pytest.raises(TopologyError) as caught:
        async with app.running():
            pass
    assert f"'{missing_in}' (read)" in caught.value.message and f"'{missing_out}' (written)" in caught.value.message
    assert f'app.topic("{missing_in}", partitions=1); app.topic("{missing_out}", partitions=1)' in caught.value.hint


async def test_sends_from_agents_timers_tasks_scripts_and_the_run_handle(broker_url, tmp_path):
    app = make_app(broker_url, tmp_path)
    src = app.topic(unique_name("in"), partitions=2)
    out = app.topic(unique_name("out"), partitions=4)
    fired = []

    @app.task
    async def seed():
        await out.send("from-task", "task")

    @app.timer(0.1)
    async def tick():
        if not fired:
            fired.append(1)
            await app.send(out, "from-timer", "timer")

    @app.agent(src)
    async def relay(stream):
        async for key, value in stream.items():
            await out.send(key, {"agent saw": value}, headers={"via": "agent"})

    await app.send(src, "from-script", "script")  # no worker yet: a producer of its own, creating the topic
    async with app.running() as run:
        await run.send(src, "from-run", "run", timestamp=1_700_000_000_000)
        records = await run.read(out, count=4, timeout=30)
    by_key = {r.key: r for r in records}
    assert {k: r.value for k, r in by_key.items()} == {
        "from-task": "task", "from-timer": "timer", "from-script": {"agent saw": "script"},
        "from-run": {"agent saw": "run"}}
    assert by_key["from-run"].timestamp == 1_700_000_000_000, "an agent's send keeps its record's timestamp"
    assert dict(by_key["from-run"].headers) == {"via": b"agent"}
    for key, record in by_key.items():
        assert record.origin.partition == partition_for(key.encode(), 4), "placed by murmur2, as everywhere"


async def test_a_crontab_sends_through_the_workers_producer(embedded_brokers, tmp_path):
    app = make_app(embedded_brokers, tmp_path)
    src, out = app.topic("in"), app.topic("out")
    app.stream(src).foreach(lambda k, v: None)

    @app.crontab("*/5 * * * *")
    async def every_five_minutes():
        await out.send("cron", "fired")

    clock = ManualClock(1_800_000_000.0)
    worker = app.create_worker(clock=clock)
    runner = asyncio.create_task(worker.run(handle_signals=False))
    await worker.wait_assigned()
    clock.advance(300)
    admin = await admin_of(app)
    tp = TopicPartition("out", 0)
    async with asyncio.timeout(10):
        while (await admin.list_offsets([tp], "latest"))[tp] == 0:
            await asyncio.sleep(0.05)
    await admin.stop()
    worker.stop()
    await runner


async def test_an_agents_send_commits_and_aborts_with_its_records_offsets(embedded_brokers, tmp_path):
    app = make_app(embedded_brokers, tmp_path, processing_guarantee="exactly_once", commit_interval=30)
    src, out = app.topic("orders"), app.topic("receipts")

    @app.agent(src)
    async def receipt(stream):
        async for key, order in stream.items():
            await out.send(key, {"receipt for": order})

    transport = app.transport()
    tp = TopicPartition("orders", 0)
    admin = await admin_of(app)
    async with app.running() as run:
        await run.send(src, "o1", 1)
        await run.until(lambda: run.worker.metrics.get("records_processed") == 1)
        assert await run.read(out) == [], "the receipt waits in the open transaction"
        usurper = transport.producer(transactional_id=f"{app.app_id}-0_0")
        await usurper.start()  # a newer owner of task 0_0: the open transaction is aborted
        await usurper.stop()
    assert await admin.committed_offsets(app.app_id, [tp]) == {tp: None}, "the input offset went with the abort"
    async with app.running() as run:  # the task restarts from its last commit and sends again
        await run.until(lambda: run.worker.metrics.get("records_processed") == 1)
    async with app.running() as run:
        receipts = await run.read(out, from_beginning=True)
    assert [(r.key, r.value) for r in receipts] == [("o1", {"receipt for": 1})], "exactly one committed receipt"
    assert await admin.committed_offsets(app.app_id, [tp]) == {tp: 1}
    await admin.stop()


async def test_an_agents_send_is_part_of_the_transaction_on_kafka(brokers, tmp_path):
    from tests.kafka_helpers import read_topic

    app = make_app(brokers, tmp_path, processing_guarantee="exactly_once", commit_interval=30)
    src, out = app.topic(unique_name("orders")), app.topic(unique_name("receipts"))

    @app.agent(src)
    async def receipt(stream):
        async for key, order in stream.items():
            await out.send(key, {"receipt for": order})

    async with app.running() as run:
        await run.send(src, "o1", 1)
        pending = await read_topic(brokers, out.name, expected=1, isolation_level="read_uncommitted")
        assert [r.key for r in pending] == [b"o1"]
        assert await run.read(out) == [], "read_committed readers wait for the commit"
    committed = await read_topic(brokers, out.name, expected=1)  # the worker's last commit, on stopping
    assert [r.key for r in committed] == [b"o1"]


async def test_a_record_routed_to_a_missing_topic_goes_alone_to_the_dlq(broker_url, tmp_path):
    app = make_app(broker_url, tmp_path, on_error="dlq")
    src, good = app.topic(unique_name("in")), app.topic(unique_name("good"))
    nowhere, nowhere_either = unique_name("nowhere"), unique_name("nowhere-either")
    app.stream(src).to(lambda key, value: value["to"])

    @app.agent(src)
    async def forward(stream):
        async for key, value in stream.items():
            if "send" in value:
                await app.send(value["send"], key, value)

    sent = [{"to": good.name}, {"to": nowhere}, {"to": good.name}, {"to": good.name, "send": nowhere_either}]
    async with app.running() as run:
        for n, value in enumerate(sent):
            await run.send(src, f"k{n}", value)
        delivered = await run.read(good, count=3, timeout=30)
        dead = await run.read(app.config.dlq_topic, count=2, timeout=30, value_serde="json")
        await run.send(src, "later", {"to": good.name})  # the worker goes on
        [later] = await run.read(good, count=1, timeout=30)
    assert [r.key for r in delivered] == ["k0", "k2", "k3"] and later.key == "later"
    errors = {r.key: dict(r.headers) for r in dead}
    assert sorted(errors) == ["k1", "k3"]
    assert errors["k1"]["streams.error.type"] == b"UnknownTopicError"
    assert nowhere.encode() in errors["k1"]["streams.error.message"]
    assert nowhere_either.encode() in errors["k3"]["streams.error.message"]
    admin = await admin_of(app)
    tp = TopicPartition(src.name, 0)
    assert await admin.committed_offsets(app.app_id, [tp]) == {tp: 5}, "past the bad records: no crash loop"
    await admin.stop()
    async with app.running() as run:  # a restart redoes nothing
        await asyncio.sleep(1)
        assert run.worker.metrics.get("records_processed") == 0
        assert len(await run.read(app.config.dlq_topic, from_beginning=True, value_serde="bytes")) == 2


@dataclasses.dataclass
class Order:
    id: str
    amount: float


async def test_a_topic_declares_model_types_for_its_readers_writers_and_sends(embedded_brokers, tmp_path):
    app = make_app(embedded_brokers, tmp_path)
    orders = app.topic("orders", value_type=Order)
    doubled = app.topic("doubled", value_type=Order)
    app.stream(orders).map_values(lambda order: Order(order.id, order.amount * 2)).to(doubled)
    with TestDriver(app) as driver:
        driver.pipe_input(orders, "k", Order("o1", 2.5))
        assert driver.read_key_values(doubled) == [("k", Order("o1", 5.0))]
    async with app.running() as run:
        await run.send(orders, "k", Order("o2", 1.0))
        [record] = await run.read(doubled, count=1)
        [raw] = await run.read(doubled, from_beginning=True, value_serde="json")
    assert record.value == Order("o2", 2.0) and raw.value == {"id": "o2", "amount": 2.0}
