"""The worker-style examples in examples/ run as documented, here on a fresh in-process broker.

The self-contained examples (quickstart, wordcount, orders, payments) are run
by their own tests; these apps expect their topics to exist, so the test makes
them, feeds sample input and checks the outputs.
"""

from __future__ import annotations

import asyncio
import importlib
import subprocess
import sys

import orjson

from streams.transport import OutRecord, TopicPartition, TopicSpec
from tests.process_helpers import REPO
from tests.transport_helpers import read_all, run_until


def load(name: str, brokers: str, state_dir):
    module = importlib.import_module(f"examples.{name}")
    module = importlib.reload(module)
    module.app.configure(brokers=brokers)
    module.app.configure(state_dir=state_dir)
    return module


async def setup(transport, topics: dict[str, int], records: list[OutRecord]) -> None:
    admin = transport.admin()
    await admin.start()
    await admin.create_topics([TopicSpec(name, n) for name, n in topics.items()])
    await admin.stop()
    producer = transport.producer()
    await producer.start()
    await producer.send_many(records)
    await producer.flush()
    await producer.stop()


async def read(transport, topic: str, partitions: int) -> list[tuple[str, object]]:
    return [(key.decode(), orjson.loads(value)) for key, value in await read_all(transport, topic, partitions)]


def json_record(topic: str, key: str, value: object) -> OutRecord:
    return OutRecord(topic, 0, key.encode(), value if isinstance(value, bytes) else orjson.dumps(value), None, ())


async def test_clicks_pipeline(embedded_brokers, tmp_path):
    module = load("clicks_pipeline", embedded_brokers, tmp_path)
    transport = module.app.transport()
    outputs_topics = ("slow-clicks", "mobile-clicks", "desktop-clicks")
    await setup(transport, {"clicks": 1, **{t: 1 for t in outputs_topics}}, [
        json_record("clicks", "ada", {"user": "ada", "page": "/home", "ms": 1500, "device": "mobile"}),
        json_record("clicks", "bo", {"user": "bo", "page": "/cart", "ms": 80}),
        json_record("clicks", "cy", b"not json"),
    ])
    worker = module.app.create_worker()
    runner = asyncio.create_task(worker.run())
    try:
        async with asyncio.timeout(20):
            while not (worker.tasks and worker.metrics.get("dlq_records") == 1
                       and worker.metrics.get("records_processed") >= 4):
                await asyncio.sleep(0.05)
    finally:
        worker.stop()
        await runner
    outputs = {t: await read(transport, t, 1) for t in outputs_topics}
    assert outputs["slow-clicks"] == [("/home", 1500)]
    assert [k for k, _ in outputs["mobile-clicks"]] == ["ada"] and outputs["mobile-clicks"][0][1]["mobile"] is True
    assert [k for k, _ in outputs["desktop-clicks"]] == ["bo"]
    consumer = transport.consumer(None)
    await consumer.start()
    dlq = TopicPartition("clicks-pipeline-dlq", 0)
    consumer.assign([dlq])
    consumer.seek(dlq, 0)
    dead = (await consumer.poll(1000)).get(dlq, [])
    await consumer.stop()
    assert [(r.key, r.value) for r in dead] == [(b"cy", b"not json")]


async def test_tables_example(embedded_brokers, tmp_path):
    module = load("tables", embedded_brokers, tmp_path)
    app = module.app
    transport = app.transport()
    await setup(transport, {"payments": 2, "accounts": 1, "account-totals": 2}, [
        json_record("payments", "p1", {"account": "a1", "amount": 10.0}),
        json_record("payments", "p2", {"account": "a1", "amount": 5.5}),
        json_record("payments", "p3", {"account": "a2", "amount": 1.0}),
        json_record("accounts", "a1", {"name": "Ada"}),
    ])
    await run_until(app, lambda: dict(app.store("totals").items()) == {"a1": 15.5, "a2": 1.0}
                    and app.store("holders").get("a1") == {"name": "Ada"}
                    and app.store("payment-counts").get("a1") == 2)
    assert sorted(await read(transport, "account-totals", 2)) == [("a1", 10.0), ("a1", 15.5), ("a2", 1.0)]


async def test_agents_and_timers_example(embedded_brokers, tmp_path):
    module = load("agents_and_timers", embedded_brokers, tmp_path)
    app = module.app
    transport = app.transport()
    await setup(transport, {"orders": 2, "order-reviews": 1}, [
        json_record("orders", "o1", {"amount": 50.0}),
        json_record("orders", "o2", {"amount": 5000.0}),
    ])
    await run_until(app, lambda: module.totals["orders"] == 2)
    assert await read(transport, "order-reviews", 1) == [("o2", {"order": "o2", "reason": "large amount",
                                                                  "amount": 5000.0})]


def test_examples_describe_from_the_command_line():
    for name in ("clicks_pipeline", "agents_and_timers", "tables"):
        result = subprocess.run([sys.executable, f"examples/{name}.py", "describe"], cwd=REPO,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and result.stdout.startswith("Topologies:"), result.stderr
