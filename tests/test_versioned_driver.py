"""Versioned tables without a broker: the versioned store against a model of every put, and stream-table joins
that look a versioned table up as of each stream record's time, with out-of-order table updates."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams import App
from streams.runtime.stores import TaskStore
from streams.serdes import BytesSerde
from streams.state.spec import StoreSpec
from streams.state.versioned import DROPPED, HISTORICAL, LATEST, NO_TIME, VERSIONS, VersionedStore
from streams.testing import TestDriver

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Model:
    """Every accepted put kept forever; lookups answered from first principles."""

    def __init__(self, retention: int) -> None:
        self.retention = retention
        self.stream_time = NO_TIME
        self.puts: dict[str, dict[int, object]] = {}

    def put(self, key: str, ts: int, value) -> str:
        if ts < self.stream_time - self.retention:
            return DROPPED
        self.stream_time = max(self.stream_time, ts)
        versions = self.puts.setdefault(key, {})
        versions[ts] = value
        return LATEST if ts == max(versions) else HISTORICAL

    def get(self, key: str, as_of: int):
        if as_of < self.stream_time - self.retention:
            return None
        versions = self.puts.get(key, {})
        valid = [t for t in versions if t <= as_of]
        return versions[max(valid)] if valid else None


def raw_store(name: str = "versions") -> TaskStore:
    return TaskStore(StoreSpec(name, BytesSerde(), BytesSerde(), None), 0, None)


operations = st.lists(st.tuples(st.sampled_from(["put", "get"]), st.sampled_from("ab"), st.integers(0, 60),
                                st.one_of(st.none(), st.integers(0, 9))), max_size=60)


@PROPERTY
@given(operations, st.integers(1, 25))
def test_the_versioned_store_answers_as_a_model_of_every_put_does(ops, retention):
    store = VersionedStore(raw_store(), retention)
    model = Model(retention)
    for op, key, ts, value in ops:
        raw = None if value is None else str(value).encode()
        if op == "put":
            assert store.put(key.encode(), ts, raw) == model.put(key, ts, raw)
        for probe in range(0, 61, 3):
            assert store.get(key.encode(), probe) == model.get(key, probe), (op, key, ts, probe)
        latest = model.puts.get(key, {})
        assert store.get(key.encode()) == (latest[max(latest)] if latest else None)
    # Only versions that some lookup within the history can still find are kept.
    cutoff = store.stream_time - retention
    for key in (b"a", b"b"):
        for valid_from, valid_to, raw in store.versions(key):
            assert valid_to is None and (raw is not None or valid_from > cutoff) or valid_to > cutoff


def test_the_store_survives_being_reopened_and_keeps_its_stream_time():
    store = raw_store()
    versioned = VersionedStore(store, 10)
    versioned.put(b"k", 5, b"v5")
    versioned.put(b"k", 20, b"v20")
    versioned.save()
    store.commit({}, {})
    again = VersionedStore(store, 10)
    assert again.stream_time == 20 and again.get(b"k", 12) == b"v5" and again.get(b"k", 9) is None
    assert again.put(b"k", 9, b"late") == DROPPED
    assert [key[:1] for key, _ in store.items()] == [b"m", VERSIONS, VERSIONS, b"x"]


def rates_app(kind: str = "left", retention=timedelta(minutes=10)) -> App:
    app = App("rates", brokers="unused:9092")
    rates = app.table("rates", name="rates", versioned=retention)
    orders = app.stream("orders")
    (orders.join if kind == "inner" else orders.left_join)(
        rates, lambda order, rate: [order, rate], name="priced").to("out")
    rates.to_stream().to("rate-changes")
    return app


def test_a_late_order_joins_the_rate_valid_at_its_time():
    minute = 60_000
    with TestDriver(rates_app()) as driver:
        driver.pipe_input("rates", "EUR", 1.10, timestamp=0)
        driver.pipe_input("rates", "EUR", 1.20, timestamp=5 * minute)
        driver.pipe_input("orders", "EUR", "o1", timestamp=6 * minute)
        driver.pipe_input("orders", "EUR", "o2", timestamp=2 * minute)  # late: the rate of its own time
        driver.pipe_input("rates", "EUR", 1.15, timestamp=3 * minute)  # out of order: into the history only
        driver.pipe_input("orders", "EUR", "o3", timestamp=4 * minute)
        driver.pipe_input("orders", "EUR", "o4", timestamp=-1 * minute)  # before any rate
        assert driver.read_key_values("out") == [("EUR", ["o1", 1.2]), ("EUR", ["o2", 1.1]), ("EUR", ["o3", 1.15]),
                                                 ("EUR", ["o4", None])]
        assert driver.read_key_values("rate-changes") == [("EUR", 1.1), ("EUR", 1.2)]
        assert driver.store("rates").get("EUR") == 1.2
        history = driver.store("rates-versions")
        assert history.get("EUR", as_of=3 * minute) == 1.15 and history.get("EUR") == 1.2
        assert history.versions("EUR") == [(0, 3 * minute, 1.1), (3 * minute, 5 * minute, 1.15),
                                           (5 * minute, None, 1.2)]
        assert dict(history.items()) == {"EUR": 1.2} and len(history) == 1
        driver.pipe_input("rates", "EUR", None, timestamp=20 * minute)  # a delete; the history moves on
        driver.pipe_input("rates", "EUR", 9.9, timestamp=5 * minute)  # older than the retention: dropped
        driver.pipe_input("orders", "EUR", "o5", timestamp=12 * minute)
        driver.pipe_input("orders", "EUR", "o6", timestamp=9 * minute)  # older than the history: no rate
        assert driver.read_key_values("out") == [("EUR", ["o5", 1.2]), ("EUR", ["o6", None])]
        assert driver.tasks["0_0"].metrics.get("late_records") == 1
        assert history.versions("EUR") == [(5 * minute, 20 * minute, 1.2), (20 * minute, None, None)]
        assert dict(history.items()) == {} and history.get("EUR", "gone") == "gone"


def test_versioned_argument_is_checked():
    app = App("rates", brokers="unused:9092")
    with pytest.raises(ValueError, match="versioned must be a positive duration"):
        app.table("rates", versioned=0)
    with pytest.raises(ValueError, match="versioned must not be negative"):
        app.table("rates", versioned=timedelta(seconds=-1))
    with pytest.raises(TypeError, match="versioned must be a timedelta"):
        app.table("rates", versioned="1h")


events = st.lists(st.one_of(
    st.tuples(st.just("rates"), st.sampled_from("ab"), st.integers(0, 50), st.one_of(st.none(), st.integers(1, 9))),
    st.tuples(st.just("orders"), st.sampled_from("ab"), st.integers(0, 50), st.just(None))), max_size=50)


@PROPERTY
@given(events, st.sampled_from(["inner", "left"]), st.integers(1, 30))
def test_a_stream_joins_the_versioned_table_as_of_each_records_time(steps, kind, retention):
    model = Model(retention)
    with TestDriver(rates_app(kind, retention)) as driver:
        for n, (topic, key, ts, value) in enumerate(steps):
            driver.pipe_input(topic, key, value if topic == "rates" else f"o{n}", timestamp=ts)
            if topic == "rates":
                model.put(key, ts, value)
                expected = []
            else:
                rate = model.get(key, ts)
                expected = [] if rate is None and kind == "inner" else [(key, [f"o{n}", rate])]
            assert driver.read_key_values("out") == expected, f"step {n}"
