"""Foreign-key joins against the real broker: inner and left joins of orders with their customers (topics of
different partition counts) follow changed foreign keys and deletes on both sides, across a restart with the
same state directory and one with a wiped state directory; and random update sequences of both tables, checked
against a model of the join across a restart."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams import App
from tests.conftest import create_topics, unique_name
from tests.kafka_helpers import FAST_GROUP, decoded, produce, read_topic, running

COMPACT = {"cleanup.policy": "compact"}


def as_table(pairs) -> dict:
    table: dict = {}
    for key, value in pairs:
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value
    return table


async def table_becomes(brokers: str, topic: str, expected: dict, timeout: float = 30) -> dict:
    """The table the topic describes, read again until it equals `expected` or the time is up."""
    deadline = time.monotonic() + timeout
    while True:
        found = as_table(decoded(await read_topic(brokers, topic, expected=None, timeout=5, idle=1)))
        if found == expected or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.5)


def fk_app(brokers: str, state_dir, app_id: str, t: dict) -> App:
    app = App(app_id, brokers=brokers, state_dir=state_dir, commit_interval=0.2, consumer_config=FAST_GROUP)
    orders, customers = app.table(t["orders"], name="orders"), app.table(t["customers"], name="customers")
    orders.join(customers, lambda o, c: {**o, "name": c["name"]}, foreign_key=lambda o: o.get("customer"),
                name="named").to(t["inner"])
    orders.left_join(customers, lambda o, c: {**o, "name": c and c["name"]}, foreign_key=lambda o: o.get("customer"),
                     name="maybe-named").to(t["left"])
    return app


def expected(orders: dict, customers: dict) -> tuple[dict, dict]:
    inner, left = {}, {}
    for key, order in orders.items():
        customer = customers.get(order.get("customer"))
        left[key] = {**order, "name": customer and customer["name"]}
        if customer is not None:
            inner[key] = left[key]
    return inner, left


async def test_foreign_key_joins_across_restarts(brokers, tmp_path):
    t = {n: unique_name(n) for n in ("orders", "customers", "inner", "left")}
    await create_topics(brokers, {t["orders"]: 3, t["customers"]: 2}, COMPACT)
    await create_topics(brokers, {t["inner"]: 2, t["left"]: 2})
    app_id = unique_name("fk")
    orders = {f"o{n}": {"customer": f"c{n % 4}", "n": n} for n in range(12)}
    customers = {f"c{n}": {"name": f"name-{n}"} for n in range(3)}  # c3 is missing
    await produce(brokers, t["orders"], list(orders.items()))
    await produce(brokers, t["customers"], list(customers.items()))
    app = fk_app(brokers, tmp_path / "s", app_id, t)
    async with running(app) as worker:
        inner, left = expected(orders, customers)
        assert await table_becomes(brokers, t["inner"], inner) == inner
        assert await table_becomes(brokers, t["left"], left) == left
        counts = worker.plan.partition_counts
        assert counts[f"{app_id}-named-subscription-repartition"] == 2
        assert counts[f"{app_id}-named-response-repartition"] == 3

    changes = [("o0", {"customer": "c3", "n": 0}), ("o1", None), ("o2", {"n": 2}), ("o4", {"customer": "c2", "n": 4})]
    customer_changes = [("c1", None), ("c3", {"name": "name-3"}), ("c2", {"name": "renamed"})]
    await produce(brokers, t["orders"], changes)
    await produce(brokers, t["customers"], customer_changes)
    for source, updates in ((orders, changes), (customers, customer_changes)):
        for key, value in updates:
            if value is None:
                source.pop(key)
            else:
                source[key] = value
    app = fk_app(brokers, tmp_path / "s", app_id, t)
    async with running(app):
        inner, left = expected(orders, customers)
        assert await table_becomes(brokers, t["inner"], inner) == inner
        assert await table_becomes(brokers, t["left"], left) == left

    shutil.rmtree(tmp_path / "s")  # wiped: the left rows and the subscriptions come back from their changelogs
    await produce(brokers, t["customers"], [("c0", {"name": "zero"}), ("c3", None)])
    customers["c0"] = {"name": "zero"}
    del customers["c3"]
    app = fk_app(brokers, tmp_path / "s", app_id, t)
    async with running(app) as worker:
        inner, left = expected(orders, customers)
        assert await table_becomes(brokers, t["inner"], inner) == inner
        assert await table_becomes(brokers, t["left"], left) == left
        restored = {r.store for r in worker.restore_results if r.restored}
    assert {"named-left-store", "named-subscriptions-store", "maybe-named-subscriptions-store"} <= restored


order_rows = st.one_of(st.none(), st.builds(lambda c, n: {"customer": c, "n": n},
                                            st.sampled_from(["c0", "c1", "c2", None]), st.integers(0, 3)))
customer_rows = st.one_of(st.none(), st.builds(lambda n: {"name": n}, st.sampled_from(["Ann", "Bob"])))
update_runs = st.lists(st.one_of(st.tuples(st.just("orders"), st.sampled_from(["o0", "o1", "o2", "o3"]), order_rows),
                                 st.tuples(st.just("customers"), st.sampled_from(["c0", "c1", "c2"]), customer_rows)),
                       min_size=1, max_size=25)


@settings(max_examples=3, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=update_runs, second=update_runs)
def test_random_update_sequences_match_the_model_across_a_restart(brokers, first, second):
    """Random updates of both tables, half before and half after a restart: both joins equal the model's."""
    asyncio.run(_random_sequences(brokers, first, second))


async def _random_sequences(brokers: str, first: list, second: list) -> None:
    t = {n: unique_name(n) for n in ("orders", "customers", "inner", "left")}
    await create_topics(brokers, {t["orders"]: 3, t["customers"]: 2}, COMPACT)
    await create_topics(brokers, {t["inner"]: 2, t["left"]: 2})
    app_id, tables = unique_name("fk"), {"orders": {}, "customers": {}}
    with tempfile.TemporaryDirectory() as state_dir:
        for run in (first, second):
            for topic in ("orders", "customers"):
                updates = [(key, value) for table, key, value in run if table == topic]
                await produce(brokers, t[topic], updates)
                for key, value in updates:
                    if value is None:
                        tables[topic].pop(key, None)
                    else:
                        tables[topic][key] = value
            async with running(fk_app(brokers, state_dir, app_id, t)):
                inner, left = expected(tables["orders"], tables["customers"])
                assert await table_becomes(brokers, t["inner"], inner) == inner
                assert await table_becomes(brokers, t["left"], left) == left
