"""Joins through the TestDriver: every kind by example and against reference models (pure, no broker).

The property tests state each join's semantics declaratively (which pairs of
records join, when an unmatched record's result is due, what a table join's
result table holds) and compare them with what the real tasks emit after every
input record.
"""

from __future__ import annotations

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams import App, Record, TopologyError
from streams.runtime.stores import TaskStore
from streams.task.ordering import TaskInputs
from streams.task.task import Task
from streams.testing import TestDriver
from streams.transport.base import RawRecord, TopicPartition
from streams.windows import JoinWindows
from streams.windows.join_store import JoinBuffer

PROPERTY = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def make_app() -> App:
    return App("junit", brokers="unused:9092")


def pair(left, right):
    return [left, right]


def step_outputs(driver: TestDriver, topic: str = "out") -> list[tuple]:
    return sorted(((r.key, r.value, r.timestamp) for r in driver.read_output(topic)), key=repr)


# -- stream-table


def orders_and_customers(kind: str) -> App:
    app = make_app()
    customers = app.table("customers", name="customers")
    orders = app.stream("orders")
    join = orders.join if kind == "inner" else orders.left_join
    join(customers, lambda order, customer: {**order, "name": customer and customer["name"]}).to("out")
    return app


def test_stream_table_join_keeps_the_stream_key_and_timestamp_and_sees_the_current_row():
    with TestDriver(orders_and_customers("inner")) as driver:
        driver.pipe_input("orders", "c1", {"id": 1}, timestamp=10)  # no customer yet: dropped
        driver.pipe_input("customers", "c1", {"name": "Ann"}, timestamp=500)
        driver.pipe_input("orders", "c1", {"id": 2}, timestamp=20, headers=(("h", b"v"),))
        driver.pipe_input("customers", "c1", {"name": "Annie"}, timestamp=600)  # a table update emits nothing
        assert [(r.key, r.value, r.timestamp, r.headers) for r in driver.read_output("out")] == [
            ("c1", {"id": 2, "name": "Ann"}, 20, (("h", b"v"),))]
        driver.pipe_input("orders", "c1", {"id": 3}, timestamp=30)
        driver.pipe_input("customers", "c1", None)  # a tombstone removes the row
        driver.pipe_input("orders", "c1", {"id": 4}, timestamp=40)
        assert driver.read_key_values("out") == [("c1", {"id": 3, "name": "Annie"})]


def test_stream_table_left_join_calls_the_joiner_with_none_without_a_row():
    with TestDriver(orders_and_customers("left")) as driver:
        driver.pipe_input("orders", "c1", {"id": 1})
        driver.pipe_input("customers", "c1", {"name": "Ann"})
        driver.pipe_input("orders", "c1", {"id": 2})
        driver.pipe_input("customers", "c1", None)
        driver.pipe_input("orders", "c1", {"id": 3})
        driver.pipe_input("orders", None, {"id": 4})  # no key: nothing to look up, dropped
        assert driver.read_key_values("out") == [
            ("c1", {"id": 1, "name": None}), ("c1", {"id": 2, "name": "Ann"}), ("c1", {"id": 3, "name": None})]
        assert driver.tasks["0_0"].metrics.get("dropped_null_records") == 1


table_events = st.lists(st.tuples(st.sampled_from("TS"), st.sampled_from("abc"),
                                  st.one_of(st.none(), st.integers(0, 9))), max_size=40)


@PROPERTY
@given(table_events, st.sampled_from(["inner", "left"]))
def test_stream_table_join_matches_a_dict_model(events, kind):
    app = make_app()
    table = app.table("t")
    stream = app.stream("s")
    (stream.join if kind == "inner" else stream.left_join)(table, pair).to("out")
    model: dict[str, int] = {}
    with TestDriver(app) as driver:
        for i, (side, key, value) in enumerate(events):
            if side == "T":
                driver.pipe_input("t", key, value, timestamp=i)
                expected = []
                if value is None:
                    model.pop(key, None)
                else:
                    model[key] = value
            else:
                driver.pipe_input("s", key, f"s{i}", timestamp=i)
                row = model.get(key)
                expected = [] if row is None and kind == "inner" else [(key, [f"s{i}", row], i)]
            assert step_outputs(driver) == expected


def test_stream_table_join_materializes_a_computed_table():
    app = make_app()
    vip = app.table("customers").filter(lambda key, c: c["vip"]).map_values(lambda c: c["name"])
    assert vip.store_name is None
    app.stream("orders").join(vip, pair, name="vip-orders").to("out")
    assert vip.store_name == "vip-orders-table-store"
    with TestDriver(app) as driver:
        driver.pipe_input("customers", "c1", {"vip": True, "name": "Ann"})
        driver.pipe_input("customers", "c2", {"vip": False, "name": "Bob"})
        driver.pipe_input("orders", "c1", 1)
        driver.pipe_input("orders", "c2", 2)
        driver.pipe_input("customers", "c1", {"vip": False, "name": "Ann"})  # filtered out: a delete
        driver.pipe_input("orders", "c1", 3)
        assert driver.read_key_values("out") == [("c1", [1, "Ann"])]
        assert dict(driver.store("vip-orders-table-store").items()) == {}


def test_stream_table_join_on_a_table_from_an_aggregation():
    app = make_app()
    counts = app.stream("clicks").group_by(lambda key, click: click["user"]).count(name="clicks-per-user")
    app.stream("purchases").left_join(counts, pair).to("out")
    with TestDriver(app, partitions={"clicks": 2, "purchases": 2}) as driver:
        for user in ("ann", "ann", "bob"):
            driver.pipe_input("clicks", "x", {"user": user})
        for user in ("ann", "bob", "cy"):
            driver.pipe_input("purchases", user, user.upper())
        assert sorted(driver.read_key_values("out")) == [("ann", ["ANN", 2]), ("bob", ["BOB", 1]),
                                                         ("cy", ["CY", None])]


def test_a_key_changed_stream_is_repartitioned_to_the_table_partition_count():
    app = make_app()
    customers = app.table("customers")
    orders = app.stream("orders").select_key(lambda key, order: order["customer"])
    orders.join(customers, pair, name="enrich").to("out")
    with TestDriver(app, partitions={"orders": 3, "customers": 2}) as driver:
        assert driver.plan.partition_counts["junit-enrich-repartition"] == 2
        driver.pipe_input("customers", "c1", "Ann")
        driver.pipe_input("customers", "c2", "Bob")
        for n, customer in enumerate(["c1", "c2", "c1"]):
            driver.pipe_input("orders", f"o{n}", {"customer": customer, "n": n})
        assert sorted(driver.read_key_values("out"), key=repr) == sorted([
            ("c1", [{"customer": "c1", "n": 0}, "Ann"]), ("c2", [{"customer": "c2", "n": 1}, "Bob"]),
            ("c1", [{"customer": "c1", "n": 2}, "Ann"])], key=repr)


def test_joining_topics_with_different_partition_counts_names_them():
    app = make_app()
    app.stream("orders").join(app.table("customers"), pair).to("out")
    with pytest.raises(TopologyError, match=r"customers \(2 partitions\), orders \(3 partitions\)"):
        TestDriver(app, partitions={"orders": 3, "customers": 2})


def test_join_argument_errors():
    app = make_app()
    orders, table = app.stream("orders"), app.table("customers")
    with pytest.raises(TypeError, match="inner or left"):
        orders.outer_join(table, pair, window=JoinWindows(10))
    with pytest.raises(TypeError, match="no window"):
        orders.join(table, pair, window=JoinWindows(10))
    with pytest.raises(TypeError, match="JoinWindows"):
        orders.join(app.stream("payments"), pair)
    with pytest.raises(TypeError, match="key mapper"):
        orders.join(table, lambda k, v: k, pair)
    with pytest.raises(TypeError, match="Table"):
        table.join(orders, pair)
    with pytest.raises(ValueError, match="same app"):
        orders.join(make_app().table("customers"), pair)
    with pytest.raises(ValueError, match="negative"):
        JoinWindows(-1)


# -- global tables


def test_global_table_join_by_a_mapped_key_needs_no_copartitioning():
    app = make_app()
    products = app.global_table("products", name="products")
    orders = app.stream("orders")
    orders.join(products, lambda key, order: order["product"], pair).to("inner")
    orders.left_join(products, lambda key, order: order.get("product"), pair).to("left")
    with TestDriver(app, partitions={"orders": 3, "products": 2}) as driver:
        driver.pipe_input("products", "p1", {"price": 3}, partition=1)
        driver.pipe_input("products", "p2", {"price": 5}, partition=0)
        driver.pipe_input("orders", "o1", {"product": "p1"})
        driver.pipe_input("orders", "o2", {"product": "p9"})
        driver.pipe_input("orders", "o3", {})  # key_mapper gives None: no row
        driver.pipe_input("products", "p1", None, partition=1)
        driver.pipe_input("orders", "o4", {"product": "p1"})
        assert driver.read_key_values("inner") == [("o1", [{"product": "p1"}, {"price": 3}])]
        assert driver.read_key_values("left") == [
            ("o1", [{"product": "p1"}, {"price": 3}]), ("o2", [{"product": "p9"}, None]), ("o3", [{}, None]),
            ("o4", [{"product": "p1"}, None])]
        assert dict(driver.store("products").items()) == {"p2": {"price": 5}}
        assert driver.store("products").get("p2") == {"price": 5} and len(driver.store("products")) == 1


def test_global_table_store_keeps_offsets_per_partition():
    app = make_app()
    table = app.global_table("products", name="products")
    app.stream("orders").join(table, lambda k, v: v, pair).to("out")
    with TestDriver(app, partitions={"products": 2}) as driver:
        for n in range(3):
            driver.pipe_input("products", f"p{n}", n, partition=n % 2)
        assert driver.global_stores["products"].offsets() == {0: 2, 1: 1}


# -- table-table


def two_tables(kind: str) -> App:
    app = make_app()
    left, right = app.table("left"), app.table("right")
    getattr(left, {"inner": "join", "left": "left_join", "outer": "outer_join"}[kind])(right, pair).to("out")
    return app


@pytest.mark.parametrize(("kind", "expected"), [
    ("inner", [("k", ["l1", "r1"]), ("k", ["l2", "r1"]), ("k", None)]),
    ("left", [("k", ["l1", None]), ("k", ["l1", "r1"]), ("k", ["l2", "r1"]), ("k", ["l2", None]), ("k", None)]),
    ("outer", [("k", ["l1", None]), ("k", ["l1", "r1"]), ("k", ["l2", "r1"]), ("k", ["l2", None]), ("k", None),
               ("k", [None, "r2"])]),
])
def test_table_table_join_updates_on_both_sides_and_deletes_as_tombstones(kind, expected):
    with TestDriver(two_tables(kind)) as driver:
        driver.pipe_input("left", "k", "l1")
        driver.pipe_input("right", "k", "r1")
        driver.pipe_input("left", "k", "l2")
        driver.pipe_input("right", "k", None)
        if kind == "inner":  # the pair is gone already: put it back to see the left delete
            driver.pipe_input("right", "k", "r1")
        driver.pipe_input("left", "k", None)
        driver.pipe_input("right", "k", "r2")
        got = driver.read_key_values("out")
        if kind == "inner":
            # updates after the right delete: tombstone, then l2+r1 again, then the left delete's tombstone
            assert got == [("k", ["l1", "r1"]), ("k", ["l2", "r1"]), ("k", None), ("k", ["l2", "r1"]), ("k", None)]
        else:
            assert got == expected


def expected_join(kind: str, left: dict, right: dict) -> dict:
    keys = {"inner": left.keys() & right.keys(), "left": left.keys(), "outer": left.keys() | right.keys()}[kind]
    return {k: [left.get(k), right.get(k)] for k in keys}


@PROPERTY
@given(st.lists(st.tuples(st.sampled_from("LR"), st.sampled_from("abc"), st.one_of(st.none(), st.integers(0, 5))),
                max_size=40),
       st.sampled_from(["inner", "left", "outer"]), st.booleans())
def test_table_table_join_result_always_equals_the_join_of_the_current_tables(events, kind, computed_right):
    app = make_app()
    left, right = app.table("left"), app.table("right")
    if computed_right:  # a computed table, materialized by the join; odd values become deletes
        right = right.filter(lambda key, value: value % 2 == 0)
    getattr(left, {"inner": "join", "left": "left_join", "outer": "outer_join"}[kind])(right, pair).to("out")
    tables: dict[str, dict] = {"L": {}, "R": {}}
    view: dict = {}
    with TestDriver(app) as driver:
        for side, key, value in events:
            driver.pipe_input("left" if side == "L" else "right", key, value)
            visible = value if not (computed_right and side == "R" and value is not None and value % 2) else None
            if visible is None:
                tables[side].pop(key, None)
            else:
                tables[side][key] = visible
            for out_key, row in driver.read_key_values("out"):
                assert out_key == key
                if row is None:
                    view.pop(out_key, None)
                else:
                    view[out_key] = row
            assert view == expected_join(kind, tables["L"], tables["R"])


# -- stream-stream


def stream_stream_app(kind: str, window: JoinWindows) -> App:
    app = make_app()
    left, right = app.stream("left"), app.stream("right")
    getattr(left, {"inner": "join", "left": "left_join", "outer": "outer_join"}[kind])(
        right, pair, window=window, name="j").to("out")
    return app


def test_orders_and_payments_within_ten_minutes_when_late_records_are_dropped():
    minute = 60_000
    app = stream_stream_app("left", JoinWindows(0, 10 * minute, grace=minute, late="drop"))
    with TestDriver(app) as driver:
        driver.pipe_input("left", "o1", "order1", timestamp=0)
        driver.pipe_input("left", "o2", "order2", timestamp=1 * minute)
        driver.pipe_input("right", "o1", "pay1", timestamp=4 * minute)
        assert step_outputs(driver) == [("o1", ["order1", "pay1"], 4 * minute)]
        driver.pipe_input("right", "o2", "late-pay2", timestamp=12 * minute)  # after o2's ten minutes
        assert step_outputs(driver) == []  # o2's window is open until 1 + 10 + 1 (grace) minutes
        driver.pipe_input("right", "x", "tick", timestamp=12 * minute + 1)
        assert step_outputs(driver) == [("o2", ["order2", None], 1 * minute)]  # no spurious None for o1
        driver.pipe_input("left", "o3", "order3", timestamp=0)  # its window closed at 11 minutes: late
        assert driver.tasks["0_0"].metrics.get("late_records") == 1


def test_outer_join_emits_unmatched_records_of_both_sides_once_their_windows_close():
    app = stream_stream_app("outer", JoinWindows(before=5, after=10, grace=2, late="drop"))
    with TestDriver(app) as driver:
        driver.pipe_input("left", "a", "L1", timestamp=100)
        driver.pipe_input("right", "b", "R1", timestamp=100)
        driver.pipe_input("right", "a", "R2", timestamp=96)  # 100 - 4 is within before=5 of L1
        assert step_outputs(driver) == [("a", ["L1", "R2"], 100)]
        driver.pipe_input("left", "z", "tick", timestamp=107)  # R1 closes at 100 + 5 + 2 = 107: not yet passed
        assert step_outputs(driver) == []
        driver.pipe_input("left", "z", "tick", timestamp=108)
        assert step_outputs(driver) == [("b", [None, "R1"], 100)]
        driver.pipe_input("left", "z", "tick", timestamp=113)  # L1 (closes at 112) matched: nothing to say
        assert step_outputs(driver) == []


def test_a_late_record_still_joins_what_the_other_side_keeps():
    # Kafka Streams' rules: nothing is dropped as late; a side keeps records for before + after + grace
    # behind its newest one, and an unmatched result can be followed by a match.
    app = stream_stream_app("left", JoinWindows(0, 10, grace=2))
    with TestDriver(app) as driver:
        driver.pipe_input("left", "o1", "order1", timestamp=0)
        driver.pipe_input("right", "x", "tick", timestamp=13)  # order1 closed at 0 + 10 + 2 = 12
        assert step_outputs(driver) == [("o1", ["order1", None], 0)]
        driver.pipe_input("right", "o1", "pay1", timestamp=5)  # late, yet the left side still keeps order1
        assert step_outputs(driver) == [("o1", ["order1", "pay1"], 5)]
        driver.pipe_input("left", "o2", "order2", timestamp=1)  # its window closed already: no match comes
        assert step_outputs(driver) == [("o2", ["order2", None], 1)]
        driver.pipe_input("left", "y", "tick", timestamp=30)  # order1 lies more than 0 + 10 + 2 behind: gone
        driver.pipe_input("right", "o1", "pay2", timestamp=9)
        assert step_outputs(driver) == []
        assert driver.tasks["0_0"].metrics.get("late_records") == 0


def test_unmatched_results_wait_until_the_oldest_known_one_has_closed():
    # As in Kafka Streams, the join looks for closed unmatched records only once the oldest one it knows
    # of has closed, judged by the reach of the side the newest record came in on.
    app = stream_stream_app("outer", JoinWindows(before=5, after=10, grace=2))
    with TestDriver(app) as driver:
        driver.pipe_input("left", "a", "L1", timestamp=100)
        driver.pipe_input("right", "b", "R1", timestamp=100)
        driver.pipe_input("right", "a", "R2", timestamp=96)
        assert step_outputs(driver) == [("a", ["L1", "R2"], 100)]
        driver.pipe_input("left", "z", "tick", timestamp=108)  # R1 closed at 107, but 100 + 10 + 2 >= 108
        assert step_outputs(driver) == []
        driver.pipe_input("right", "y", "tock", timestamp=109)  # seen from the right: 100 + 5 + 2 < 109
        assert step_outputs(driver) == [("b", [None, "R1"], 100)]


def test_a_stream_joins_itself():
    app = make_app()
    events = app.stream("events")
    events.join(events, pair, window=JoinWindows(1)).to("out")
    with TestDriver(app) as driver:
        driver.pipe_input("events", "k", "e1", timestamp=10)
        assert step_outputs(driver) == [("k", ["e1", "e1"], 10)]
        driver.pipe_input("events", "k", "e2", timestamp=11)
        assert step_outputs(driver) == sorted([("k", ["e1", "e2"], 11), ("k", ["e2", "e1"], 11),
                                               ("k", ["e2", "e2"], 11)], key=repr)


def test_both_key_changed_streams_are_repartitioned_alike():
    app = make_app()
    left = app.stream("left").select_key(lambda key, value: value)
    right = app.stream("right").select_key(lambda key, value: value)
    left.join(right, pair, window=JoinWindows(5), name="j").to("out")
    with TestDriver(app, partitions={"left": 3, "right": 2}) as driver:
        counts = driver.plan.partition_counts
        assert counts["junit-j-left-repartition"] == counts["junit-j-right-repartition"] == 3
        driver.pipe_input("left", "x", "v", timestamp=1)
        driver.pipe_input("right", "y", "v", timestamp=2)
        assert driver.read_key_values("out") == [("v", ["v", "v"])]


# The declarative model of a windowed join with late="drop".  With ST(j) the largest timestamp among
# records 0..j, and close(x) = ts + after + grace for a left record, ts + before + grace
# for a right one:
# - record j is accepted iff close(j) >= ST(j); the others count as late;
# - accepted i < j of opposite sides and equal keys, with left time l and right time r
#   satisfying l - before <= r <= l + after, join at step j iff close(i) >= ST(j);
# - an accepted record of an outer side that joins nothing gets its None result at the
#   first step k with ST(k) > close(i).


def strict_model_steps(events, window: JoinWindows, kind: str) -> tuple[list[list[tuple]], int]:
    outer = {"L": kind in ("left", "outer"), "R": kind == "outer"}
    span = {"L": window.left_close_span, "R": window.right_close_span}
    times = []
    stream_time = -(1 << 62)
    for _side, _key, ts in events:
        stream_time = max(stream_time, ts)
        times.append(stream_time)
    close = [ts + span[side] for side, _key, ts in events]
    accepted = [close[j] >= times[j] for j in range(len(events))]
    steps: list[list[tuple]] = [[] for _ in events]
    joined = set()
    for j, (side_j, key_j, ts_j) in enumerate(events):
        for i in range(j):
            side_i, key_i, ts_i = events[i]
            if not (accepted[i] and accepted[j]) or side_i == side_j or key_i != key_j or close[i] < times[j]:
                continue
            (l_id, l_ts), (r_id, r_ts) = sorted([(f"{side_i}{i}", ts_i), (f"{side_j}{j}", ts_j)])
            if l_ts - window.before <= r_ts <= l_ts + window.after:
                steps[j].append((key_j, [l_id, r_id], max(ts_i, ts_j)))
                joined |= {i, j}
    for i, (side, key, ts) in enumerate(events):
        if accepted[i] and outer[side] and i not in joined:
            due = next((k for k in range(i + 1, len(events)) if times[k] > close[i]), None)
            if due is not None:
                value = [f"L{i}", None] if side == "L" else [None, f"R{i}"]
                steps[due].append((key, value, ts))
    return [sorted(step, key=repr) for step in steps], accepted.count(False)


def kafka_model_steps(events, window: JoinWindows, kind: str) -> tuple[list[list[tuple]], int]:
    """Kafka Streams' rules over plain lists (JoinWindows(late="join")).

    Each side keeps all its records; a record sees the other side's records with its key in
    its range and time above that side's newest - (before + after + grace).  Unmatched
    records of an outer side wait in a list; when a record at stream time arrives, and the
    oldest waiting time known plus that record's side's reach and grace has passed, the list
    is walked oldest first (right before left at equal times) and closed entries go out,
    until an open entry of each side has been seen.  Nothing counts as late.
    """
    outer = {"L": kind in ("left", "outer"), "R": kind == "outer"}
    reach = {"L": (window.before, window.after), "R": (window.after, window.before)}
    lookback = {"L": window.after, "R": window.before}
    kept: dict[str, list[tuple[int, str, int]]] = {"L": [], "R": []}
    newest = {"L": -(1 << 62), "R": -(1 << 62)}
    waiting: list[tuple[int, str, str, int]] = []  # (time, side, key, id)
    since = None
    stream_time = -(1 << 62)
    steps = []
    for j, (side, key, ts) in enumerate(events):
        out = []
        stream_time = max(stream_time, ts)
        other = "R" if side == "L" else "L"
        if kind != "inner" and ts == stream_time and (
                since is None or since + reach[side][1] + window.grace < stream_time):
            since, open_sides, done = None, set(), []
            for entry in sorted(waiting, key=lambda e: (e[0], e[1] == "L", e[2])):
                since = entry[0]
                if len(open_sides) == 2:
                    break
                if entry[0] + lookback[entry[1]] + window.grace >= stream_time:
                    open_sides.add(entry[1])
                    continue
                value = [f"L{entry[3]}", None] if entry[1] == "L" else [None, f"R{entry[3]}"]
                out.append((entry[2], value, entry[0]))
                done.append(entry)
            waiting = [e for e in waiting if e not in done]
        before, after = reach[side]
        low = max(ts - before, newest[other] - window.retention + 1)
        matches = [(i, t) for i, k, t in kept[other] if k == key and low <= t <= ts + after]
        for i, t in matches:
            waiting = [e for e in waiting if (e[0], e[1], e[2]) != (t, other, key)]
            ids = sorted([f"{side}{j}", f"{other}{i}"])
            out.append((key, ids, max(ts, t)))
        if outer[side] and not matches:
            if ts + after < stream_time:
                out.append((key, [f"L{j}", None] if side == "L" else [None, f"R{j}"], ts))
            else:
                since = ts if since is None else min(since, ts)
                waiting.append((ts, side, key, j))
        kept[side].append((j, key, ts))
        newest[side] = max(newest[side], ts)
        steps.append(sorted(out, key=repr))
    return steps, 0


MODELS = {"join": kafka_model_steps, "drop": strict_model_steps}


def with_late(window: JoinWindows, late: str) -> JoinWindows:
    return JoinWindows(window.before, window.after, window.grace, late=late)


windowed_events = st.lists(st.tuples(st.sampled_from("LR"), st.sampled_from("ab"), st.integers(0, 40)),
                           max_size=40)
join_windows = st.builds(JoinWindows, st.integers(0, 8), st.integers(0, 8), st.integers(0, 6))


@PROPERTY
@given(windowed_events, join_windows, st.sampled_from(["inner", "left", "outer"]), st.sampled_from(["join", "drop"]))
def test_stream_stream_join_matches_the_model_after_every_record(events, window, kind, late_rule):
    window = with_late(window, late_rule)
    expected, late = MODELS[late_rule](events, window, kind)
    with TestDriver(stream_stream_app(kind, window)) as driver:
        for i, (side, key, ts) in enumerate(events):
            driver.pipe_input("left" if side == "L" else "right", key, f"{side}{i}", timestamp=ts)
            assert step_outputs(driver) == expected[i], f"step {i}"
        assert driver.tasks["0_0"].metrics.get("late_records") == late


def join_task(driver: TestDriver, path=None) -> Task:
    plan = driver.plan.tasks["0_0"]
    stores = {s.name: TaskStore(s, 0, None if path is None else path / s.name) for s in plan.subtopology.stores}
    return Task(plan, "junit", driver.partition_counts, driver.error_policy, stores=stores)


def feed_batches(task: Task, events, start: int, stop: int) -> list[tuple]:
    """Feed events[start:stop] in batches of consecutive same-side records; returns the outputs."""
    out = []
    i = start
    while i < stop:
        side = events[i][0]
        j = i
        while j < stop and events[j][0] == side:
            j += 1
        topic = "left" if side == "L" else "right"
        raws = [RawRecord(topic, 0, n, events[n][2], events[n][1].encode(), f'"{events[n][0]}{n}"'.encode(), ())
                for n in range(i, j)]
        task.process({TopicPartition(topic, 0): raws})
        task.changelog_output()
        task.checkpoint_stores({})
        out.extend(task.take_output())
        i = j
    return [(r.key.decode(), orjson.loads(r.value), r.timestamp) for r in out]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(windowed_events, join_windows, st.sampled_from(["inner", "left", "outer"]), st.sampled_from(["join", "drop"]),
       st.data())
def test_batches_and_a_restart_over_rocksdb_give_the_same_results(tmp_path_factory, events, window, kind, late_rule,
                                                                 data):
    window = with_late(window, late_rule)
    expected, late = MODELS[late_rule](events, window, kind)
    cut = data.draw(st.integers(0, len(events)))
    path = tmp_path_factory.mktemp("join")
    with TestDriver(stream_stream_app(kind, window)) as driver:
        task = join_task(driver, path)
        got = feed_batches(task, events, 0, cut)
        lates = task.metrics.get("late_records")
        task.close()
        task = join_task(driver, path)  # a new task over the same state: buffers and stream time survive
        got += feed_batches(task, events, cut, len(events))
        task.close()
    assert sorted(got, key=repr) == sorted((r for step in expected for r in step), key=repr)
    assert lates + task.metrics.get("late_records") == late


@pytest.mark.parametrize("late_rule, left_kept, right_kept", [
    ("join", range(91, 100), range(91, 100)),  # t > 99 - (before + after + grace) on both sides
    ("drop", range(93, 100), range(95, 100)),  # until the window closes: t + 6 >= 99, r + 4 >= 99
])
def test_join_stores_drop_records_they_no_longer_need(late_rule, left_kept, right_kept):
    app = stream_stream_app("inner", JoinWindows(before=3, after=5, grace=1, late=late_rule))
    with TestDriver(app) as driver:
        for n in range(100):
            driver.pipe_input("left", "k", n, timestamp=n)
            driver.pipe_input("right", "k", n, timestamp=n)
        left = driver.tasks["0_0"].stores["j-left-store"]
        right = driver.tasks["0_0"].stores["j-right-store"]
        assert sorted(ts for _k, ts, _m, _v in JoinBuffer(left).records()) == list(left_kept)
        assert sorted(ts for _k, ts, _m, _v in JoinBuffer(right).records()) == list(right_kept)


def test_a_task_processes_both_sides_of_a_poll_in_timestamp_order():
    app = stream_stream_app("left", JoinWindows(0, 10))
    with TestDriver(app) as driver:
        task = join_task(driver)
        raw = RawRecord
        # One poll: the right partition's batch comes first and runs far ahead of the left one.
        task.process({TopicPartition("right", 0): [raw("right", 0, 0, 5, b"a", b'"pa"', ()),
                                                  raw("right", 0, 1, 100, b"b", b'"pb"', ())],
                      TopicPartition("left", 0): [raw("left", 0, 0, 1, b"a", b'"oa"', ()),
                                                 raw("left", 0, 1, 95, b"b", b'"ob"', ())]})
        out = [(r.key.decode(), orjson.loads(r.value)) for r in task.take_output()]
        assert out == [("a", ["oa", "pa"]), ("b", ["ob", "pb"])]
        assert task.metrics.get("late_records") == 0
        task.close()


def raw_at(topic: str, offset: int, ts: int, key: bytes = b"k", value: bytes = b'"v"') -> RawRecord:
    return RawRecord(topic, 0, offset, ts, key, value, ())


def as_records(tp: TopicPartition, raws: list[RawRecord]) -> list[Record]:
    return [Record(r.key, r.value, r.timestamp, r.headers, r) for r in raws]


def test_ordered_inputs_hold_records_back_while_a_partition_is_dry():
    left, right = TopicPartition("left", 0), TopicPartition("right", 0)
    inputs = TaskInputs([left, right], as_records, hold=True, max_idle_ms=500)
    inputs.add(left, [raw_at("left", n, ts) for n, ts in enumerate((1, 2, 7))])
    assert list(inputs.take(1_000)) == [] and inputs.pending  # right may still deliver older records
    assert inputs.position(left) == 0
    inputs.add(right, [raw_at("right", 0, 3)])
    runs = list(inputs.take(1_100))
    assert [(tp.topic, [r.timestamp for r in raws]) for tp, raws, _span in runs] == [("left", [1, 2]), ("right", [3])]
    assert inputs.advanced() == {left: 2, right: 1}
    assert list(inputs.take(1_500)) == []  # right ran dry again: left@7 waits, from 1_100 on
    runs = list(inputs.take(1_600))
    assert [(tp.topic, [r.timestamp for r in raws]) for tp, raws, _span in runs] == [("left", [7])]
    assert not inputs.pending and inputs.advanced() == {left: 3}


def test_a_dry_partition_read_to_its_end_holds_nothing_back():
    left, right = TopicPartition("left", 0), TopicPartition("right", 0)
    inputs = TaskInputs([left, right], as_records, hold=True, max_idle_ms=500)
    inputs.add(left, [raw_at("left", n, ts) for n, ts in enumerate((1, 2))])
    assert list(inputs.take(1_000)) == []  # right may still deliver older records
    runs = list(inputs.take(1_000, caught_up={right}))  # the consumer read right to its end: nothing older comes
    assert [(tp.topic, [r.timestamp for r in raws]) for tp, raws, _span in runs] == [("left", [1, 2])]
    inputs.add(left, [raw_at("left", 2, 5)])
    inputs.add(right, [raw_at("right", 0, 3)])
    runs = list(inputs.take(1_001, caught_up={right}))  # right runs dry while left still has a record: left goes on
    assert [(tp.topic, [r.timestamp for r in raws]) for tp, raws, _span in runs] == [("right", [3]), ("left", [5])]
    assert not inputs.pending


def test_a_task_keeps_two_inputs_in_timestamp_order_across_polls():
    app = stream_stream_app("left", JoinWindows(0, 10))
    now = [0]
    with TestDriver(app) as driver:
        plan = driver.plan.tasks["0_0"]
        task = Task(plan, "junit", driver.partition_counts, driver.error_policy, clock=lambda: now[0],
                    max_idle_ms=200, stores={s.name: TaskStore(s, 0, None) for s in plan.subtopology.stores})
        # The first poll brings only the right input, far ahead of the left one.
        task.process({TopicPartition("right", 0): [raw_at("right", 0, 5, b"a", b'"pa"'),
                                                  raw_at("right", 1, 100, b"b", b'"pb"')]})
        assert task.take_output() == [] and task.offsets == {}
        task.process({TopicPartition("left", 0): [raw_at("left", 0, 1, b"a", b'"oa"'),
                                                 raw_at("left", 1, 95, b"b", b'"ob"')]})
        assert [(r.key, r.value) for r in task.take_output()] == [(b"a", b'["oa","pa"]')]
        now[0] = 250  # right stays dry for longer than max_idle_ms: the rest goes
        task.process({})
        assert [(r.key, r.value) for r in task.take_output()] == [(b"b", b'["ob","pb"]')]
        assert task.metrics.get("late_records") == 0
        assert task.offsets == {TopicPartition("right", 0): 2, TopicPartition("left", 0): 2}
        task.close()


def test_a_record_from_the_future_goes_to_the_dlq_before_it_can_hold_back_its_partition():
    """Ordered by its time, it would put the rest of its partition behind the whole other input: late."""
    app = stream_stream_app("left", JoinWindows(0, 10))
    with TestDriver(app) as driver:
        task = join_task(driver)
        far = 253402214400000
        task.process({TopicPartition("left", 0): [raw_at("left", 0, 1, b"a", b'"oa"'),
                                                 raw_at("left", 1, far, b"a", b'"ox"'),
                                                 raw_at("left", 2, 95, b"b", b'"ob"')],
                      TopicPartition("right", 0): [raw_at("right", 0, 5, b"a", b'"pa"'),
                                                  raw_at("right", 1, 100, b"b", b'"pb"')]})
        output = task.take_output()
        assert [(r.key, r.value) for r in output if r.topic == "out"] == [(b"a", b'["oa","pa"]'),
                                                                           (b"b", b'["ob","pb"]')]
        [dead] = [r for r in output if r.topic == app.config.dlq_topic]
        assert dead.timestamp == far and dict(dead.headers)["streams.error.type"] == b"FutureTimestampError"
        assert task.metrics.get("late_records") == 0
        task.close()
