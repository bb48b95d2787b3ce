"""Table operations through the TestDriver: filter, map_values, to_stream with tombstones, group_by with
aggregate/count/reduce (an update subtracts the old value and adds the new), to_table, and joins of tables
re-keyed through a repartition topic, checked by example and against a model of the current rows."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams import App, TopologyError
from streams.processors.grouped_table import ChangeSerde
from streams.serdes import JsonSerde
from streams.testing import TestDriver

PROPERTY = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def make_app() -> App:
    return App("tables", brokers="unused:9092")


def as_table(pairs, table: dict | None = None) -> dict:
    """The table an update stream describes, applied onto `table`: None deletes."""
    table = {} if table is None else table
    for key, value in pairs:
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value
    return table


def test_change_pairs_round_trip_through_their_serde():
    serde = ChangeSerde(JsonSerde())
    for change in [(None, None), (1, None), (None, {"a": 1}), ({"a": [1]}, "x"), ("", 0)]:
        assert serde.deserialize(serde.serialize(change)) == change
    assert serde.serialize(None) is None and serde.deserialize(None) is None


def test_filter_map_values_and_to_stream_forward_deletes_as_none():
    app = make_app()
    accounts = app.table("accounts")
    active = accounts.filter(lambda key, a: a["active"]).map_values(lambda a: a["owner"])
    active.to_stream().to("active-owners")
    with TestDriver(app) as driver:
        driver.pipe_input("accounts", "a1", {"active": True, "owner": "Ann"})
        driver.pipe_input("accounts", "a2", {"active": False, "owner": "Bob"})  # filtered: a delete downstream
        driver.pipe_input("accounts", "a1", {"active": False, "owner": "Ann"})
        driver.pipe_input("accounts", "a2", None)
        assert driver.read_key_values("active-owners") == [("a1", "Ann"), ("a2", None), ("a1", None), ("a2", None)]


def region_totals(app: App, prefilter: bool = False):
    customers = app.table("customers")
    if prefilter:  # a computed table: rows failing the filter arrive as deletes
        customers = customers.filter(lambda key, c: c["amount"] >= 0)
    by_region = customers.group_by(lambda key, c: (c["region"], c["amount"]), name="by-region")
    totals = by_region.aggregate(lambda: 0, lambda region, amount, total: total + amount,
                                 lambda region, amount, total: total - amount, name="totals")
    counts = by_region.count(name="counts")
    return totals, counts


def test_group_by_aggregate_subtracts_the_old_value_and_adds_the_new():
    app = make_app()
    totals, counts = region_totals(app)
    totals.to_stream().to("totals")
    counts.to_stream().to("counts")
    with TestDriver(app) as driver:
        driver.pipe_input("customers", "c1", {"region": "eu", "amount": 10}, timestamp=1)
        driver.pipe_input("customers", "c2", {"region": "eu", "amount": 5}, timestamp=2)
        assert driver.read_key_values("totals") == [("eu", 10), ("eu", 15)]
        driver.pipe_input("customers", "c1", {"region": "eu", "amount": 7}, timestamp=3)  # same group: one update
        assert [(r.key, r.value, r.timestamp) for r in driver.read_output("totals")] == [("eu", 12, 3)]
        driver.pipe_input("customers", "c2", {"region": "us", "amount": 5}, timestamp=4)  # moves: - eu, + us
        assert driver.read_key_values("totals") == [("eu", 7), ("us", 5)]
        driver.pipe_input("customers", "c1", None, timestamp=5)  # a delete takes the row's amount back
        assert driver.read_key_values("totals") == [("eu", 0)]
        assert as_table(driver.read_key_values("counts")) == {"eu": 0, "us": 1}
        assert dict(driver.store("totals").items()) == {"eu": 0, "us": 5}
        assert dict(driver.store("by-region-prior-store").items()) == {"c2": {"region": "us", "amount": 5}}
        driver.pipe_input("customers", "c9", None)  # deleting an absent row changes no group
        assert driver.read_key_values("totals") == []


def test_group_by_reduce_and_a_none_group_key():
    app = make_app()
    grouped = app.table("items").group_by(lambda key, item: (item.get("bin"), item["n"]), name="bins")
    grouped.reduce(lambda total, n: total + n, lambda total, n: total - n, name="per-bin").to_stream().to("out")
    with TestDriver(app) as driver:
        driver.pipe_input("items", "i1", {"bin": "a", "n": 3})
        driver.pipe_input("items", "i2", {"n": 4})  # no bin: in no group
        driver.pipe_input("items", "i2", {"bin": "a", "n": 4})
        driver.pipe_input("items", "i1", {"n": 3})  # leaves its bin
        assert driver.read_key_values("out") == [("a", 3), ("a", 7), ("a", 4)]


def test_group_by_selector_errors():
    app = App("tables", brokers="unused:9092", on_error="skip")
    app.table("t").group_by(lambda key, value: (value["g"], 1)).count(name="n").to_stream().to("out")
    with TestDriver(app) as driver:
        driver.pipe_input("t", "k", {"g": "x"})
        driver.pipe_input("t", "k", {"no": "group"})  # the selector raises: skipped, the prior value stays
        driver.pipe_input("t", "k", None)
        assert driver.read_key_values("out") == [("x", 1), ("x", 0)]
        assert driver.tasks["0_0"].metrics.get("skipped_records") == 1
    app = make_app()
    app.table("t").group_by(lambda key, value: value, name="shape").count().to_stream().to("out")
    with TestDriver(app) as driver, pytest.raises(TopologyError, match="shape-select.*pair"):
        driver.pipe_input("t", "k", "not a pair")


rows = st.lists(st.tuples(st.sampled_from("abcd"),
                          st.one_of(st.none(), st.tuples(st.sampled_from("xyz"), st.integers(-3, 9)))),
                max_size=40)


@PROPERTY
@given(rows, st.booleans(), st.sampled_from([1, 3]))
def test_grouped_aggregates_always_equal_the_groups_of_the_current_rows(events, prefilter, partitions):
    app = make_app()
    totals, counts = region_totals(app, prefilter)
    totals.to_stream().to("totals")
    counts.to_stream().to("counts")
    current: dict[str, tuple] = {}
    touched: set[str] = set()
    totals_view: dict = {}
    counts_view: dict = {}
    with TestDriver(app, partitions={"customers": partitions}) as driver:
        for key, row in events:
            value = None if row is None else {"region": row[0], "amount": row[1]}
            driver.pipe_input("customers", key, value)
            if row is None or (prefilter and row[1] < 0):
                current.pop(key, None)
            else:
                current[key] = row
                touched.add(row[0])
            as_table(driver.read_key_values("totals"), totals_view)
            as_table(driver.read_key_values("counts"), counts_view)
            groups = {g: [amount for region, amount in current.values() if region == g] for g in touched}
            assert totals_view == {g: sum(amounts) for g, amounts in groups.items()}
            assert counts_view == {g: len(amounts) for g, amounts in groups.items()}


def test_a_table_joins_a_table_rekeyed_through_a_repartition_topic():
    app = make_app()
    customers = app.table("customers")
    # accounts are keyed by account id; re-keyed by customer they go through a repartition topic
    accounts = app.stream("accounts").select_key(lambda key, a: a["customer"]).to_table(name="account-of")
    customers.join(accounts, lambda c, a: [c, a["id"]], name="with-account").to("out")
    with TestDriver(app, partitions={"customers": 2, "accounts": 3}) as driver:
        assert driver.plan.partition_counts["tables-account-of-repartition"] == 2
        driver.pipe_input("customers", "c1", "Ann")
        driver.pipe_input("accounts", "acc-9", {"customer": "c1", "id": "acc-9"})
        driver.pipe_input("customers", "c2", "Bob")
        driver.pipe_input("accounts", "acc-7", {"customer": "c2", "id": "acc-7"})
        driver.pipe_input("customers", "c1", "Annie")
        assert sorted(driver.read_key_values("out")) == [("c1", ["Ann", "acc-9"]), ("c1", ["Annie", "acc-9"]),
                                                         ("c2", ["Bob", "acc-7"])]
        assert driver.store("account-of").get("c2") == {"customer": "c2", "id": "acc-7"}


def test_a_grouped_aggregate_joins_a_table_of_its_key():
    app = make_app()
    totals, _counts = region_totals(app)
    regions = app.table("regions")
    regions.left_join(totals, lambda region, total: {**region, "total": total}, name="region-totals").to("out")
    with TestDriver(app, partitions={"customers": 3, "regions": 2}) as driver:
        assert driver.plan.partition_counts["tables-by-region-repartition"] == 2
        driver.pipe_input("regions", "eu", {"name": "Europe"})
        driver.pipe_input("customers", "c1", {"region": "eu", "amount": 4})
        driver.pipe_input("customers", "c2", {"region": "eu", "amount": 6})
        assert as_table(driver.read_key_values("out")) == {"eu": {"name": "Europe", "total": 10}}


def test_tables_of_different_partition_counts_are_refused_with_their_names():
    app = make_app()
    app.table("left").join(app.stream("right").to_table(name="right-table"), lambda a, b: [a, b]).to("out")
    with pytest.raises(TopologyError, match=r"left \(3 partitions\), right \(2 partitions\)"):
        TestDriver(app, partitions={"left": 3, "right": 2})
