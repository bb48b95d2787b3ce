"""Unit tests of the stateless operators through the TestDriver (pure logic, no broker)."""

from __future__ import annotations

import gc

import pytest

from streams import App, TopologyError
from streams.serdes import IntSerde, JsonSerde, StrSerde, resolve
from streams.testing import TestDriver


def make_app(**kwargs) -> App:
    return App("unit", brokers="unused:9092", **kwargs)


def test_filter_map_values_keep_key_and_timestamp():
    app = make_app()
    app.stream("in").filter(lambda k, v: v["n"] % 2 == 0).map_values(lambda v: v["n"] * 10).to("out")
    with TestDriver(app) as driver:
        for n in range(5):
            driver.pipe_input("in", f"k{n}", {"n": n}, timestamp=1000 + n)
        out = driver.read_output("out")
    assert [(r.key, r.value, r.timestamp) for r in out] == [("k0", 0, 1000), ("k2", 20, 1002), ("k4", 40, 1004)]


def test_filter_not_flat_map_select_key_peek_foreach():
    seen, each = [], []
    app = make_app()
    s = app.stream("in")
    s.filter_not(lambda k, v: v < 0).flat_map(lambda k, v: [(f"{k}-a", v), (f"{k}-b", v + 1)]).peek(
        lambda k, v: seen.append(k)
    ).select_key(lambda k, v: k.upper()).to("out")
    s.flat_map_values(lambda v: [v] * 2).foreach(lambda k, v: each.append((k, v)))
    with TestDriver(app) as driver:
        driver.pipe_input("in", "x", 1)
        driver.pipe_input("in", "y", -1)
        assert driver.read_key_values("out") == [("X-A", 1), ("X-B", 2)]
    assert seen == ["x-a", "x-b"]
    assert each == [("x", 1), ("x", 1), ("y", -1), ("y", -1)]


def test_map_split_merge():
    app = make_app()
    branches = app.stream("in").map(lambda k, v: (v["user"], v["amount"])).split(
        {"big": lambda k, v: v >= 100, "small": lambda k, v: v > 0}, default="other"
    )
    branches["big"].to("big")
    branches["small"].merge(branches["other"]).to("rest")
    with TestDriver(app) as driver:
        for i, amount in enumerate([150, 5, 0, 100]):
            driver.pipe_input("in", str(i), {"user": f"u{i}", "amount": amount})
        assert driver.read_key_values("big") == [("u0", 150), ("u3", 100)]
        assert driver.read_key_values("rest") == [("u1", 5), ("u2", 0)]


def test_repartition_moves_records_to_key_partition():
    app = make_app()
    app.stream("in").select_key(lambda k, v: v).repartition(name="by-value").map_values(str.upper).to("out")
    with TestDriver(app, partitions={"in": 4}) as driver:
        assert sorted(driver.plan.tasks) == ["0_0", "0_1", "0_2", "0_3", "1_0", "1_1", "1_2", "1_3"]
        for i in range(8):
            driver.pipe_input("in", f"k{i}", f"v{i % 2}")
        out = driver.read_output("out")
    assert sorted((r.key, r.value) for r in out) == sorted((f"v{i % 2}", f"V{i % 2}") for i in range(8))


def test_dynamic_topic_and_serdes():
    app = make_app()
    app.stream("in", value_serde="str").to(lambda k, v: "odd" if int(v) % 2 else "even", value_serde="str")
    with TestDriver(app, partitions={"odd": 2, "even": 1}) as driver:
        driver.pipe_input("in", "a", "1")
        driver.pipe_input("in", "b", "2")
        assert driver.read_key_values("odd", value_serde="str") == [("a", "1")]
        assert driver.read_key_values("even", value_serde="str") == [("b", "2")]


def test_malformed_json_goes_to_dlq_with_headers():
    app = make_app()
    app.stream("in").map_values(lambda v: v["n"]).to("out")
    with TestDriver(app) as driver:
        driver.pipe_raw("in", b"bad", b"{not json")
        driver.pipe_input("in", "good", {"n": 1})
        driver.pipe_input("in", "nokey", {"m": 1})
        assert driver.read_key_values("out") == [("good", 1)]
        dead = driver.read_output("unit-dlq", value_serde="bytes")
    assert [r.key for r in dead] == ["bad", "nokey"]
    assert dead[0].value == b"{not json"
    headers = dict(dead[0].headers)
    assert headers["streams.error.topic"] == b"in"
    assert headers["streams.error.offset"] == b"0"
    assert headers["streams.error.type"] == b"JSONDecodeError"
    assert dict(dead[1].headers)["streams.error.type"] == b"KeyError"
    assert dict(dead[1].headers)["streams.error.offset"] == b"2"


def test_str_serde_refuses_anything_but_str_and_the_record_goes_to_the_dlq():
    """str(('ada', 7)) would be written as the key "('ada', 7)", which no reader can tell from a string."""
    app = make_app()
    app.stream("in").select_key(lambda k, v: (k, v["n"]) if v["n"] else k).to("out")
    with TestDriver(app) as driver:
        driver.pipe_input("in", "ada", {"n": 7})
        driver.pipe_input("in", "bob", {"n": 0})
        assert driver.read_key_values("out") == [("bob", {"n": 0})]
        dead = driver.read_output("unit-dlq", value_serde="json")
    assert [(r.key, r.value) for r in dead] == [("ada", {"n": 7})]
    assert dict(dead[0].headers)["streams.error.type"] == b"TypeError"
    assert b"str serde expects str, got tuple" in dict(dead[0].headers)["streams.error.message"]
    serde = resolve("str", "str")
    for obj in (("ada", 7), {"a": 1}, 5, b"raw"):
        with pytest.raises(TypeError, match="str serde expects str"):
            serde.serialize(obj)
    with pytest.raises(TypeError):
        serde.serialize_many(["a", 5])


def test_skip_policy_counts_and_fail_policy_raises():
    app = make_app(on_error="skip")
    app.stream("in").map_values(lambda v: 1 / v).to("out")
    with TestDriver(app) as driver:
        driver.pipe_input("in", "a", 0)
        driver.pipe_input("in", "b", 2)
        assert driver.read_key_values("out") == [("b", 0.5)]
        assert driver.read_output("unit-dlq") == []
        assert driver.tasks["0_0"].metrics.get("skipped_records") == 1

    app = make_app(on_error="fail")
    app.stream("in").map_values(lambda v: 1 / v).to("out")
    with TestDriver(app) as driver, pytest.raises(Exception, match=r"in\[0\]@0.*ZeroDivisionError"):
        driver.pipe_input("in", "a", 0)


def test_wrong_callback_shape_names_operator():
    app = make_app()
    app.stream("in").map(lambda k, v: v, name="bad-map").to("out")
    with TestDriver(app) as driver, pytest.raises(TopologyError, match="bad-map"):
        driver.pipe_input("in", "a", 1)


def test_agent_yields_to_sink_and_survives_an_exception():
    app = make_app()

    @app.agent("orders", sink="totals")
    async def doubler(stream):
        async for value in stream:
            if value == "boom":
                raise RuntimeError("bad order")
            yield value * 2

    with TestDriver(app) as driver:
        driver.pipe_input("orders", "a", 1)
        driver.pipe_input("orders", "b", "boom")
        driver.pipe_input("orders", "c", 3)
        assert driver.read_key_values("totals") == [("a", 2), ("c", 6)]
        dead = driver.read_output("unit-dlq", value_serde="bytes")
        assert [r.key for r in dead] == ["b"] and dict(dead[0].headers)["streams.error.type"] == b"RuntimeError"


def test_closing_the_driver_ends_an_agent_that_raised_before(caplog):
    """The agent restarted after its exception waits for records; close() must let it end, not leave it
    pending in a closed loop ("Task was destroyed but it is pending")."""
    app = make_app()
    ended = []

    @app.agent("orders", sink="totals")
    async def doubler(stream):
        try:
            async for value in stream:
                if value == "boom":
                    raise RuntimeError("bad order")
                yield value * 2
        finally:
            ended.append(True)

    with TestDriver(app) as driver:
        driver.pipe_input("orders", "a", "boom")
        driver.pipe_input("orders", "b", 3)
        assert driver.read_key_values("totals") == [("b", 6)]
        assert ended == [True]  # the first run ended with its exception
    gc.collect()
    assert ended == [True, True]  # the restarted run was cancelled and finished
    assert not [r for r in caplog.records if "destroyed but it is pending" in r.getMessage()]


def test_a_serde_class_where_an_instance_belongs_is_refused_when_the_topology_is_built():
    """JsonSerde has serialize and deserialize as plain functions: accepted, it failed on every record."""
    app = make_app()
    with pytest.raises(TypeError, match=r"JsonSerde is a serde class; pass an instance, e\.g\. JsonSerde\(\)"):
        app.stream("in", value_serde=JsonSerde)
    stream = app.stream("in")
    with pytest.raises(TypeError, match="StrSerde is a serde class"):
        stream.to("out", key_serde=StrSerde)
    with pytest.raises(TypeError, match="IntSerde is a serde class"):
        app.table("t", value_serde=IntSerde)
    stream.to("out", value_serde=JsonSerde())
    with TestDriver(app) as driver:
        driver.pipe_input("in", "a", {"n": 1})
        assert driver.read_key_values("out") == [("a", {"n": 1})]
