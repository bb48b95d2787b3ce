"""Table operations against the real broker: a grouped-table aggregate, deletes written as Kafka tombstones,
and a join with a table re-keyed through a repartition topic, across a restart with the same state directory
and one with a wiped one (the aggregate's prior values then come back from their changelog)."""

from __future__ import annotations

import shutil

from streams import App
from tests.conftest import create_topics, unique_name
from tests.kafka_helpers import FAST_GROUP, decoded, produce, read_topic, running, wait_for

COMPACT = {"cleanup.policy": "compact"}


def as_table(pairs) -> dict:
    table: dict = {}
    for key, value in pairs:
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value
    return table


def table_app(brokers: str, state_dir, app_id: str, t: dict) -> App:
    app = App(app_id, brokers=brokers, state_dir=state_dir, commit_interval=0.2, consumer_config=FAST_GROUP)
    customers = app.table(t["customers"], name="customers")
    by_region = customers.group_by(lambda key, c: (c["region"], c["amount"]), name="by-region")
    by_region.aggregate(lambda: 0, lambda region, amount, total: total + amount,
                        lambda region, amount, total: total - amount, name="totals").to(t["totals"])
    customers.filter(lambda key, c: c["amount"] >= 100).to_stream().to(t["big"])
    accounts = app.stream(t["accounts"]).select_key(lambda key, a: a["customer"]).to_table(name="account-of")
    customers.join(accounts, lambda c, a: [c["region"], a["id"]], name="with-account").to(t["joined"])
    return app


async def test_table_operations_across_restarts(brokers, tmp_path):
    t = {n: unique_name(n) for n in ("customers", "accounts", "totals", "big", "joined")}
    await create_topics(brokers, {t["customers"]: 2}, COMPACT)
    await create_topics(brokers, {t["accounts"]: 3, t["totals"]: 2, t["big"]: 2, t["joined"]: 2})
    app_id = unique_name("tables")
    await produce(brokers, t["customers"], [("c1", {"region": "eu", "amount": 10}),
                                            ("c2", {"region": "eu", "amount": 150}),
                                            ("c3", {"region": "us", "amount": 7})])
    await produce(brokers, t["accounts"], [("a1", {"customer": "c1", "id": "a1"}),
                                           ("a2", {"customer": "c3", "id": "a2"})])
    app = table_app(brokers, tmp_path / "s", app_id, t)
    async with running(app) as worker:
        totals = await read_topic(brokers, t["totals"], expected=3)
        assert as_table(decoded(totals)) == {"eu": 160, "us": 7}
        assert as_table(decoded(await read_topic(brokers, t["joined"], expected=2))) == {
            "c1": ["eu", "a1"], "c3": ["us", "a2"]}
        assert worker.plan.partition_counts[f"{app_id}-account-of-repartition"] == 2

    # Moves, a value change and deletes while stopped; the same state directory.
    await produce(brokers, t["customers"], [("c2", {"region": "us", "amount": 150}),
                                            ("c1", {"region": "eu", "amount": 20}), ("c3", None)])
    app = table_app(brokers, tmp_path / "s", app_id, t)
    async with running(app):
        await wait_for(lambda: app.store("totals").get("us") == 150 and app.store("totals").get("eu") == 20)

    shutil.rmtree(tmp_path / "s")  # wiped: every store, the prior values among them, comes from its changelog
    await produce(brokers, t["customers"], [("c2", {"region": "eu", "amount": 1}),
                                            ("c4", {"region": "us", "amount": 2})])
    await produce(brokers, t["accounts"], [("a3", {"customer": "c2", "id": "a3"})])
    app = table_app(brokers, tmp_path / "s", app_id, t)
    async with running(app) as worker:
        await wait_for(lambda: app.store("totals").get("eu") == 21 and app.store("totals").get("us") == 2)
        restored = {r.store for r in worker.restore_results if r.restored}
    assert {"totals", "by-region-prior-store", "account-of"} <= restored
    totals = await read_topic(brokers, t["totals"], expected=None)
    assert as_table(decoded(totals)) == {"eu": 21, "us": 2}
    big = await read_topic(brokers, t["big"], expected=None)
    assert sorted(r.key.decode() for r in big if r.value is None) == ["c1", "c1", "c2", "c3", "c3", "c4"]
    assert as_table(decoded(big)) == {}
    joined = await read_topic(brokers, t["joined"], expected=None)
    assert as_table(decoded(joined)) == {"c1": ["eu", "a1"], "c2": ["eu", "a3"]}
