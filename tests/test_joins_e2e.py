"""Joins against the real broker: every kind end to end, a join after a repartition, the
co-partitioning error, and join state surviving a restart (same state dir, and wiped)."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections import Counter

import orjson
import pytest

from streams import App, TestDriver, TopologyError
from streams.transport.kafka import KafkaTransport
from streams.windows import JoinWindows
from tests.conftest import create_topics, unique_name
from tests.kafka_helpers import FAST_GROUP, decoded, produce, read_topic, running, wait_for
from tests.transport_helpers import read_all

MINUTE = 60_000
COMPACT = {"cleanup.policy": "compact"}


def make_app(brokers: str, state_dir, app_id: str | None = None) -> App:
    return App(app_id or unique_name("joins"), brokers=brokers, state_dir=state_dir, commit_interval=0.2,
               consumer_config=FAST_GROUP)


def pair(left, right):
    return [left, right]


def as_table(records) -> dict:
    """The table an update stream describes: the last value per key, None deleting it."""
    table: dict = {}
    for key, value in decoded(records):
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value
    return table


async def test_every_join_kind_end_to_end(brokers, tmp_path):
    t = {n: unique_name(n) for n in ("customers", "orders", "orders-by-id", "products", "left-t", "right-t",
                                      "s-orders", "payments", "enriched", "enriched-left", "rekeyed", "priced",
                                      "tt", "matched")}
    await create_topics(brokers, {t["customers"]: 2, t["products"]: 3, t["left-t"]: 2, t["right-t"]: 2}, COMPACT)
    await create_topics(brokers, {t["orders"]: 2, t["orders-by-id"]: 3, t["s-orders"]: 1, t["payments"]: 1,
                                  **{t[n]: 2 for n in ("enriched", "enriched-left", "rekeyed", "priced", "tt",
                                                       "matched")}})
    app = make_app(brokers, tmp_path)
    customers = app.table(t["customers"], name="customers", preload=True)
    products = app.global_table(t["products"], name="products")
    orders = app.stream(t["orders"])
    orders.join(customers, lambda o, c: {**o, "name": c["name"]}).to(t["enriched"])
    orders.left_join(customers, lambda o, c: {**o, "name": c and c["name"]}).to(t["enriched-left"])
    orders.join(products, lambda key, o: o["product"], lambda o, p: {**o, "price": p["price"]}).to(t["priced"])
    by_customer = app.stream(t["orders-by-id"]).select_key(lambda key, o: o["customer"])
    by_customer.join(customers, lambda o, c: [o["id"], c["name"]], name="rekey").to(t["rekeyed"])
    app.table(t["left-t"]).outer_join(app.table(t["right-t"]), pair).to(t["tt"])
    app.stream(t["s-orders"], value_serde="str").left_join(app.stream(t["payments"], value_serde="str"), pair,
                                                           name="pay",
                                        window=JoinWindows(0, 10 * MINUTE, grace=MINUTE)).to(t["matched"])

    base = int(time.time() * 1000) - 3_600_000
    # Orders first, customers after: preloaded, the table is restored in full before any order is processed.
    await produce(brokers, t["orders"], [("c1", {"id": 1, "product": "p1"}), ("c2", {"id": 2, "product": "p2"}),
                                         ("c4", {"id": 3, "product": "p9"}), ("c3", {"id": 4, "product": "p1"})])
    await produce(brokers, t["orders-by-id"], [(f"o{n}", {"id": n, "customer": c})
                                               for n, c in enumerate(["c1", "c3", "c1", "c4"])])
    await produce(brokers, t["customers"], [("c1", {"name": "Ann"}), ("c2", {"name": "Bob"}), ("c2", None),
                                            ("c3", {"name": "Cy"})])
    await produce(brokers, t["products"], [("p1", {"price": 3}), ("p2", {"price": 5})])
    await produce(brokers, t["left-t"], [("a", 1), ("b", 2), ("a", 3), ("b", None)])
    await produce(brokers, t["right-t"], [("a", 10), ("c", 30), ("c", None)])
    await produce(brokers, t["s-orders"], [("o1", "order1", base), ("o2", "order2", base + MINUTE),
                                           ("o3", "order3", base + 2 * MINUTE)])
    await produce(brokers, t["payments"], [("o1", "pay1", base + 3 * MINUTE), ("o3", "pay3", base + 30 * MINUTE)])
    async with running(app) as worker:
        enriched = await read_topic(brokers, t["enriched"], expected=2)
        enriched_left = await read_topic(brokers, t["enriched-left"], expected=4)
        rekeyed = await read_topic(brokers, t["rekeyed"], expected=3)
        priced = await read_topic(brokers, t["priced"], expected=3)
        matched = await read_topic(brokers, t["matched"], expected=3)
        tt = await read_topic(brokers, t["tt"], expected=None)
        assert app.store("products").get("p2") == {"price": 5} and len(app.store("products")) == 2
        await produce(brokers, t["products"], [("p2", {"price": 6})])  # followed while running
        await wait_for(lambda: app.store("products").get("p2") == {"price": 6})
        await produce(brokers, t["orders"], [("c2", {"id": 5, "product": "p2"})])
        priced += await read_topic(brokers, t["priced"], expected=4)
        assert (tmp_path / app.app_id / "global" / "products").is_dir()
        assert worker.metrics.get("late_records") == 0
    assert sorted(decoded(enriched), key=repr) == [
        ("c1", {"id": 1, "product": "p1", "name": "Ann"}), ("c3", {"id": 4, "product": "p1", "name": "Cy"})]
    assert sorted(decoded(enriched_left), key=repr) == sorted([
        ("c1", {"id": 1, "product": "p1", "name": "Ann"}), ("c2", {"id": 2, "product": "p2", "name": None}),
        ("c4", {"id": 3, "product": "p9", "name": None}), ("c3", {"id": 4, "product": "p1", "name": "Cy"})], key=repr)
    assert {r.timestamp for r in enriched} <= {r.timestamp for r in enriched_left}
    assert sorted(decoded(rekeyed)) == [("c1", [0, "Ann"]), ("c1", [2, "Ann"]), ("c3", [1, "Cy"])]
    assert sorted(decoded(priced[-4:]), key=repr) == sorted([
        ("c1", {"id": 1, "product": "p1", "price": 3}), ("c2", {"id": 2, "product": "p2", "price": 5}),
        ("c3", {"id": 4, "product": "p1", "price": 3}), ("c2", {"id": 5, "product": "p2", "price": 6})], key=repr)
    assert as_table(tt) == {"a": [3, 10]}
    assert sorted((k, v, r.timestamp) for (k, v), r in zip(decoded(matched), matched, strict=True)) == [
        ("o1", ["order1", "pay1"], base + 3 * MINUTE), ("o2", ["order2", None], base + MINUTE),
        ("o3", ["order3", None], base + 2 * MINUTE)]


def customer_lookup_app(brokers: str, state_dir, app_id: str, t: dict) -> App:
    app = make_app(brokers, state_dir, app_id)
    app.stream(t["orders"], value_serde="str").left_join(app.table(t["customers"], value_serde="str"), pair).to(
        t["enriched"])
    return app


async def test_a_table_follows_its_topic_in_timestamp_order_and_restores_to_the_processed_offset(brokers, tmp_path):
    """Kafka Streams' rules: a stream record sees the rows older than itself, however the two topics
    were written; a restarted task restores the table only as far as it had processed its topic, with
    its state directory or without."""
    t = {n: unique_name(n) for n in ("orders", "customers", "enriched")}
    await create_topics(brokers, {t["customers"]: 2}, COMPACT)
    await create_topics(brokers, {t["orders"]: 2, t["enriched"]: 1})
    app_id, base = unique_name("lookup"), int(time.time() * 1000) - 3_600_000
    await produce(brokers, t["orders"], [("c1", "o1", base + 150), ("c1", "o2", base + 250), ("c2", "o3", base + 50)])
    await produce(brokers, t["customers"], [("c1", "Ann", base + 100), ("c1", "Annie", base + 200),
                                            ("c2", "Bob", base + 60)])
    async with running(customer_lookup_app(brokers, tmp_path / "a", app_id, t)):
        first = await read_topic(brokers, t["enriched"], expected=3)
    assert sorted(decoded(first)) == [("c1", ["o1", "Ann"]), ("c1", ["o2", "Annie"]), ("c2", ["o3", "Bob"])]

    for state_dir in (tmp_path / "a", tmp_path / "wiped"):  # the same state directory, then an empty one
        n = len(first)
        await produce(brokers, t["orders"], [("c1", f"o{n + 1}", base + 100 * n + 290)])
        await produce(brokers, t["customers"], [("c1", f"Anna{n}", base + 100 * n + 300)])
        async with running(customer_lookup_app(brokers, state_dir, app_id, t)):
            first = await read_topic(brokers, t["enriched"], expected=n + 1)
        # The new order is older than the new row: it meets the row restored from before the restart.
        assert decoded(first)[-1] == ("c1", [f"o{n + 1}", "Annie" if n == 3 else f"Anna{n - 1}"])


async def test_inputs_with_different_partition_counts_are_refused(brokers, tmp_path):
    orders, customers, out = unique_name("orders"), unique_name("customers"), unique_name("out")
    await create_topics(brokers, {orders: 3, customers: 2, out: 1})
    app = make_app(brokers, tmp_path)
    app.stream(orders).join(app.table(customers), pair).to(out)
    with pytest.raises(TopologyError) as failure:
        async with running(app, ready_timeout=20):
            pass
    message = str(failure.value)
    assert f"{orders} (3 partitions)" in message and f"{customers} (2 partitions)" in message


def restart_app(brokers: str, state_dir, app_id: str, t: dict) -> App:
    app = make_app(brokers, state_dir, app_id)
    app.stream(t["orders"], value_serde="str").join(app.stream(t["payments"], value_serde="str"), pair, name="pay",
                                 window=JoinWindows(0, 10 * MINUTE)).to(t["matched"])
    vip = app.table(t["right-t"]).filter(lambda key, v: v >= 10)  # computed: the join materializes it
    app.table(t["left-t"]).join(vip, pair, name="tt").to(t["tt"])
    app.global_table(t["products"], name="products")
    return app


async def test_join_state_survives_a_restart_and_a_wiped_state_dir(brokers, tmp_path):
    t = {n: unique_name(n) for n in ("orders", "payments", "left-t", "right-t", "products", "matched", "tt")}
    await create_topics(brokers, {t["left-t"]: 2, t["right-t"]: 2, t["products"]: 2}, COMPACT)
    await create_topics(brokers, {t["orders"]: 2, t["payments"]: 2, t["matched"]: 2, t["tt"]: 2})
    app_id, base = unique_name("restart"), int(time.time() * 1000) - 3_600_000
    keys = [f"o{n}" for n in range(6)]
    await produce(brokers, t["orders"], [(k, f"order-{k}", base + n) for n, k in enumerate(keys)])
    await produce(brokers, t["right-t"], [("a", 10), ("b", 5), ("c", 30)])
    await produce(brokers, t["products"], [(f"p{n}", n) for n in range(20)])

    app = restart_app(brokers, tmp_path / "a", app_id, t)
    async with running(app) as worker:  # buffers the orders, materializes the right table
        await wait_for(lambda: worker.metrics.get("records_processed") >= 9)
        assert len(app.store("products")) == 20

    await produce(brokers, t["payments"], [(k, f"pay-{k}", base + MINUTE) for k in keys[:3]])
    await produce(brokers, t["left-t"], [("a", 1)])
    await produce(brokers, t["products"], [("p0", 100)])
    app = restart_app(brokers, tmp_path / "a", app_id, t)
    async with running(app) as worker:  # same state dir: the orders buffered by the first run match
        assert sorted(decoded(await read_topic(brokers, t["matched"], expected=3))) == [
            (k, [f"order-{k}", f"pay-{k}"]) for k in keys[:3]]
        assert decoded(await read_topic(brokers, t["tt"], expected=1)) == [("a", [1, 10])]
        assert worker.global_tables.applied == {"products": 1}  # resumed from its offsets
        assert app.store("products").get("p0") == 100

    shutil.rmtree(tmp_path / "a")
    await produce(brokers, t["payments"], [(k, f"pay-{k}", base + 2 * MINUTE) for k in keys[3:]])
    await produce(brokers, t["left-t"], [("c", 3), ("b", 2)])
    app = restart_app(brokers, tmp_path / "a", app_id, t)
    async with running(app) as worker:  # wiped: buffers and the materialized table come from changelogs
        matched = await read_topic(brokers, t["matched"], expected=6)
        tt = await read_topic(brokers, t["tt"], expected=2)
        restored = Counter()
        for result in worker.restore_results:
            restored[result.store] += result.restored
        assert worker.global_tables.applied == {"products": 21}
        assert app.store("products").get("p0") == 100 and len(dict(app.store("products").items())) == 20
    assert restored["pay-left-store"] > 0 and restored["tt-right-store"] > 0
    assert sorted(decoded(matched)) == [(k, [f"order-{k}", f"pay-{k}"]) for k in keys]
    assert sorted(decoded(tt)) == [("a", [1, 10]), ("c", [3, 30])]


async def test_embedded_broker_runs_joins(embedded_brokers, tmp_path):
    """The same worker code on the in-memory broker: a global table and a windowed join."""
    from streams.transport import OutRecord, TopicSpec

    app = App(unique_name("emb"), brokers=embedded_brokers, state_dir=tmp_path, commit_interval=0.1)
    products = app.global_table("products", name="products")
    orders = app.stream("orders")
    orders.join(products, lambda key, o: o, pair).to("priced")
    orders.join(app.stream("payments"), pair, window=JoinWindows(1000)).to("matched")
    transport = app.transport()
    admin = transport.admin()
    await admin.start()
    await admin.create_topics([TopicSpec(n, 1) for n in ("products", "orders", "payments", "priced", "matched")])
    producer = transport.producer()
    await producer.start()
    await producer.send_many([OutRecord("products", 0, b"p1", b"3", None, ()),
                              OutRecord("orders", 0, b"k", b'"p1"', 1000, ()),
                              OutRecord("payments", 0, b"k", b'"paid"', 1500, ())])
    await producer.flush()
    await producer.stop()
    worker = app.create_worker(transport)
    runner = asyncio.create_task(worker.run())
    try:
        await worker.wait_started()
        await wait_for(lambda: worker.metrics.get("records_processed") >= 2 or runner.done())
        assert app.store("products").get("p1") == 3
    finally:
        worker.stop()
        await runner
    priced = await read_all(transport, "priced")
    matched = await read_all(transport, "matched")
    await admin.stop()
    assert priced == [(b"k", b'["p1",3]')]
    assert matched == [(b"k", b'["p1","paid"]')]


async def test_a_backlog_read_in_small_polls_joins_in_timestamp_order(brokers, tmp_path):
    """Polls of a few records bring one input at a time; held back, the other input catches up (with
    max_task_idle=0 most payments would be late here)."""
    orders, payments, out = unique_name("orders"), unique_name("payments"), unique_name("matched")
    await create_topics(brokers, {orders: 1, payments: 1, out: 1})
    app = App(unique_name("backlog"), brokers=brokers, state_dir=tmp_path, commit_interval=0.2,
              consumer_config={**FAST_GROUP, "max_partition_fetch_bytes": 1024}, poll_max_records=5)
    app.stream(orders, value_serde="str").join(app.stream(payments, value_serde="str"), pair,
                                               window=JoinWindows(0, MINUTE)).to(out)
    base, n = int(time.time() * 1000) - 3_600_000, 60
    await produce(brokers, orders, [(f"o{i}", f"order{i}", base + i * MINUTE) for i in range(n)])
    await produce(brokers, payments, [(f"o{i}", f"pay{i}", base + i * MINUTE + 30_000) for i in range(n)])
    async with running(app) as worker:
        got = await read_topic(brokers, out, expected=n, timeout=20)
        late = worker.metrics.get("late_records")
    assert late == 0
    assert sorted(decoded(got)) == sorted((f"o{i}", [f"order{i}", f"pay{i}"]) for i in range(n))


def lookup_app(brokers: str, state_dir, app_id: str, t: dict) -> App:
    app = make_app(brokers, state_dir, app_id)
    customers = app.table(t["customers"], name="customers")
    products = app.global_table(t["products"], name="products")
    orders = app.stream(t["orders"])
    orders.left_join(customers, pair, name="by-customer").to(t["out"])
    orders.left_join(products, lambda key, o: key, pair, name="by-product").to(t["priced"])
    return app


async def test_an_unreadable_table_row_goes_to_the_dlq_once_and_never_into_the_store(brokers, tmp_path):
    """A row that is not JSON was restored into the table as raw bytes: every later order with its key
    went to the DLQ, blamed on the join, instead of joining with no row as in the TestDriver."""
    t = {n: unique_name(n) for n in ("customers", "products", "orders", "out", "priced")}
    await create_topics(brokers, {t["customers"]: 1, t["products"]: 1}, COMPACT)
    await create_topics(brokers, {t["orders"]: 1, t["out"]: 1, t["priced"]: 1})
    app_id = unique_name("unreadable")
    rows = [("c1", {"name": "Ann"}), ("c2", b"{not json"), ("c3", {"name": "Cy"})]
    await produce(brokers, t["customers"], rows)
    products = [("c1", b"3"), ("c2", b"\xff"), ("c3", b"4")]
    await produce(brokers, t["products"], products)
    orders = [(c, n) for n, c in enumerate(("c1", "c2", "c3"))]
    await produce(brokers, t["orders"], orders)
    async with running(lookup_app(brokers, tmp_path / "a", app_id, t)):
        out = await read_topic(brokers, t["out"], expected=3)
        priced = await read_topic(brokers, t["priced"], expected=3)
    expected = [("c1", [0, {"name": "Ann"}]), ("c2", [1, None]), ("c3", [2, {"name": "Cy"}])]
    assert decoded(out) == expected
    assert decoded(priced) == [("c1", [0, 3]), ("c2", [1, None]), ("c3", [2, 4])]

    # A fresh state dir, as on a machine the task moves to: the table is restored from its topic.
    await produce(brokers, t["orders"], [("c2", 3), ("c1", 4)])
    app = lookup_app(brokers, tmp_path / "b", app_id, t)
    async with running(app) as worker:
        more = await read_topic(brokers, t["out"], expected=5)
        assert sorted(dict(app.store("customers").items())) == ["c1", "c3"]
        assert sorted(dict(app.store("products").items())) == ["c1", "c3"]
    assert sum(r.restored for r in worker.restore_results if r.store == "customers") == 2
    assert decoded(more)[3:] == [("c2", [3, None]), ("c1", [4, {"name": "Ann"}])]
    transport = KafkaTransport(brokers)
    dead = await read_all(transport, f"{app_id}-dlq")
    assert dead == [(b"c2", b"{not json")], "the bad row once, from the table's source; no order"

    driver_app = lookup_app(brokers, tmp_path / "driver", app_id, t)
    with TestDriver(driver_app) as driver:
        for key, value in rows:
            driver.pipe_raw(t["customers"], key.encode(), value if isinstance(value, bytes) else orjson.dumps(value))
        for key, value in products:
            driver.pipe_raw(t["products"], key.encode(), value)
        for key, value in orders:
            driver.pipe_input(t["orders"], key, value)
        assert driver.read_key_values(t["out"]) == expected
        assert driver.read_key_values(t["priced"]) == decoded(priced)
        assert [(r.key, r.value) for r in driver.read_output(f"{app_id}-dlq", value_serde="bytes")] == [
            ("c2", b"{not json")]


def extracted_time_app(brokers: str, state_dir, t: dict) -> App:
    app = make_app(brokers, state_dir)

    def event_time(key, value, raw):
        return value["ts"]

    orders = app.stream(t["orders"], timestamp_extractor=event_time)
    payments = app.stream(t["payments"], timestamp_extractor=event_time)
    orders.join(payments, pair, window=JoinWindows(before=0, after=1000)).to(t["out"])
    return app


async def test_inputs_are_ordered_by_the_extracted_event_time_not_the_kafka_timestamp(brokers, tmp_path):
    """Both inputs produced now, orders first: ordered by Kafka timestamp, every order ran before every
    payment, and 99 of 100 payments were late (a payment's window closes at its own time here)."""
    t = {n: unique_name(n) for n in ("orders", "payments", "out")}
    await create_topics(brokers, {t["orders"]: 1, t["payments"]: 1, t["out"]: 1})
    n = 100
    await produce(brokers, t["orders"], [(f"o{i}", {"ts": i * 100}) for i in range(n)])
    await produce(brokers, t["payments"], [(f"o{i}", {"ts": i * 100 + 50}) for i in range(n)])
    app = extracted_time_app(brokers, tmp_path, t)
    async with running(app) as worker:
        out = await read_topic(brokers, t["out"], expected=n)
        late = worker.metrics.get("late_records")
    assert late == 0
    assert len(out) == n and [r.timestamp for r in out] == [i * 100 + 50 for i in range(n)]
    assert decoded(out) == [(f"o{i}", [{"ts": i * 100}, {"ts": i * 100 + 50}]) for i in range(n)]

    # The TestDriver agrees once it gets the backlog as a worker does, in one batch (Kafka timestamps as
    # the producer set them: orders first).
    produced = [r.timestamp for r in await read_topic(brokers, t["orders"], expected=n)]
    produced += [r.timestamp for r in await read_topic(brokers, t["payments"], expected=n)]
    with TestDriver(extracted_time_app(brokers, tmp_path / "driver", t)) as driver:
        with driver.batch():
            for i in range(n):
                driver.pipe_input(t["orders"], f"o{i}", {"ts": i * 100}, timestamp=produced[i])
            for i in range(n):
                driver.pipe_input(t["payments"], f"o{i}", {"ts": i * 100 + 50}, timestamp=produced[n + i])
        assert driver.read_key_values(t["out"]) == decoded(out)
        assert driver.tasks["0_0"].metrics.get("late_records") == 0
