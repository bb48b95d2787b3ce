"""Exactly-once of the table algebra under kill -9: grouped-table aggregates, suppression, a foreign-key join,
a versioned-table join and a left stream-stream join closed on the wall clock (tests/apps/algebra.py) run in
two worker processes that are killed and restarted while input flows.

A duplicated or lost update shows: every aggregate counts its adder and subtractor calls ("ops"), whose final
value per owner is known from the input and whose emitted values must strictly increase; suppressed results
must be a subsequence of the aggregate's results; every payment must be joined exactly once (a left join: a
payment processed before its owner's first version finds none, which timing decides), and every order
must get exactly one result, matched or not; and the foreign-key join's final table must equal the join of the
final tables.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time

import orjson
from aiokafka import AIOKafkaProducer

from tests.conftest import create_topics, unique_name
from tests.kafka_helpers import decoded, read_topic
from tests.process_helpers import WorkerProcess

ACCOUNTS, OWNERS = 60, 20
UPDATES, PAYMENTS, ORDERS = 12_000, 3_000, 2_000


def inputs(rng: random.Random) -> dict[str, list]:
    """The records of each input topic, in the order they are sent."""
    return {
        "accounts": [(f"a{rng.randrange(ACCOUNTS)}", None if rng.random() < 0.05 else
                      {"owner": f"u{rng.randrange(OWNERS)}", "v": i}) for i in range(UPDATES)],
        "owners": [(f"u{rng.randrange(OWNERS)}", {"name": f"n{i}"}) for i in range(200)],
        "payments": [(f"u{rng.randrange(OWNERS)}", {"id": i}) for i in range(PAYMENTS)],
        "orders": [(f"o{i}", i) for i in range(ORDERS)],
        "shipments": [(f"o{i}", -i) for i in range(ORDERS) if i % 2],
    }


async def produce_steadily(brokers: str, t: dict, inputs: dict[str, list], seconds: float) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=brokers, linger_ms=10)
    await producer.start()
    try:
        steps = 50
        for step in range(steps):
            futures = []
            for name, records in inputs.items():
                topic = t[name]
                chunk = records[step * len(records) // steps:(step + 1) * len(records) // steps]
                for key, value in chunk:
                    futures.append(await producer.send(topic, None if value is None else orjson.dumps(value),
                                                       key=key.encode()))
            await asyncio.gather(*futures)
            await asyncio.sleep(seconds / steps)
    finally:
        await producer.stop()


def expected(accounts: list, owners: list) -> tuple[dict, dict]:
    rows: dict = {}
    ops: dict = {}
    for key, value in accounts:
        old = rows.get(key)
        if old is not None:
            ops[old["owner"]] = ops.get(old["owner"], 0) + 1
        if value is not None:
            ops[value["owner"]] = ops.get(value["owner"], 0) + 1
            rows[key] = value
        else:
            rows.pop(key, None)
    latest_owner = dict(owners)
    totals = {owner: {"n": 0, "sum": 0, "ops": n} for owner, n in ops.items()}
    for row in rows.values():
        totals[row["owner"]]["n"] += 1
        totals[row["owner"]]["sum"] += row["v"]
    named = {key: [row["v"], latest_owner.get(row["owner"])] for key, row in rows.items()}
    return totals, named


def latest(records) -> dict:
    table: dict = {}
    for key, value in decoded(records):
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value
    return table


async def test_table_algebra_is_exactly_once_under_kill_9(brokers, tmp_path):
    t = {n: unique_name(n) for n in ("accounts", "owners", "payments", "orders", "shipments", "totals", "calm",
                                      "named", "paid", "shipped")}
    await create_topics(brokers, {t["accounts"]: 4, t["owners"]: 3, t["payments"]: 3, t["orders"]: 3,
                                  t["shipments"]: 3, t["totals"]: 2, t["calm"]: 2, t["named"]: 2, t["paid"]: 2,
                                  t["shipped"]: 2})
    rng = random.Random(17)
    sent = inputs(rng)
    initial_owners = [(f"u{k}", {"name": f"first-{k}"}) for k in range(OWNERS)]
    await produce_steadily(brokers, t, {"owners": initial_owners}, 0.1)
    env = {"TEST_APP_ID": unique_name("algebra"), **{f"TEST_{name.upper()}": topic for name, topic in t.items()}}
    workers = [WorkerProcess(brokers, {**env, "TEST_STATE_DIR": str(tmp_path / f"w{n}")}, tmp_path / f"w{n}.log",
                             app="tests.apps.algebra:app").start() for n in range(2)]
    try:
        producing = asyncio.create_task(produce_steadily(brokers, t, sent, 10))
        kills = 0
        while not producing.done() or kills < 3:
            await asyncio.sleep(rng.uniform(2.0, 3.5))
            victim = rng.choice(workers)
            victim.signal(signal.SIGKILL)
            victim.wait(10)
            victim.start()
            kills += 1
        await producing
        totals, named = expected(sent["accounts"], initial_owners + sent["owners"])
        deadline = time.monotonic() + 180
        while True:
            out = {name: await read_topic(brokers, t[name], expected=None, timeout=30, idle=2)
                   for name in ("totals", "calm", "named", "paid", "shipped")}
            done = latest(out["totals"]) == totals and latest(out["named"]) == named
            if (done and len(out["paid"]) >= PAYMENTS and len(out["shipped"]) >= ORDERS) or \
                    time.monotonic() > deadline:
                break
            await asyncio.sleep(2)
        logs = [w.log()[-1500:] for w in workers]
    finally:
        for worker in workers:
            worker.kill()
    assert latest(out["totals"]) == totals, logs
    assert latest(out["named"]) == named, logs
    assert sorted(value[0]["id"] for _, value in decoded(out["paid"])) == list(range(PAYMENTS))
    names = {(key, value["name"]) for key, value in initial_owners + sent["owners"]}
    assert all(owner is None or (key, owner["name"]) in names for key, (_, owner) in decoded(out["paid"]))
    shipped = decoded(out["shipped"])
    assert sorted(order for _, (order, _shipment) in shipped) == list(range(ORDERS))
    assert all(shipment in (None, -order) for _, (order, shipment) in shipped)
    updates: dict[str, list] = {}
    for key, value in decoded(out["totals"]):
        updates.setdefault(key, []).append(value)
    for key, values in updates.items():
        assert all(a["ops"] < b["ops"] for a, b in zip(values, values[1:], strict=False)), f"{key} repeated an update"
    for key, value in decoded(out["calm"]):  # each suppressed result is a later aggregate result than the last
        remaining = updates[key]
        assert value in remaining, f"{key}: suppressed {value}, which the aggregate did not emit after the last one"
        updates[key] = remaining[remaining.index(value) + 1:]
