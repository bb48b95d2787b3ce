"""suppress() through the TestDriver and over real RocksDB stores: until_window_closes equals emit="final"
for every window kind, until_time_limit rate-limits each key, a full buffer emits early or fails, and the
buffer survives a restart and an aborted transaction."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams import App, BufferFullError, until_time_limit, until_window_closes
from streams.runtime.stores import TaskStore
from streams.task.task import Task
from streams.testing import TestDriver
from streams.transport.base import RawRecord, TopicPartition
from streams.windows import Hopping, Session, Sliding, Tumbling, WindowedJsonSerde

PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
WINDOWED = WindowedJsonSerde()


def make_app(**kwargs) -> App:
    return App("suppress", brokers="unused:9092", **kwargs)


def rate_limited(limit=10, **options) -> App:
    app = make_app()
    app.table("prices").suppress(until_time_limit(limit, **options), name="calm").to("out")
    return app


def outputs(driver: TestDriver, topic: str = "out") -> list[tuple]:
    return [(r.key, r.value, r.timestamp) for r in driver.read_output(topic)]


def test_until_time_limit_emits_each_keys_latest_value_once_per_limit():
    with TestDriver(rate_limited(10)) as driver:
        driver.pipe_input("prices", "a", 1, timestamp=0)
        driver.pipe_input("prices", "a", 2, timestamp=5)
        driver.pipe_input("prices", "b", 7, timestamp=9)
        assert outputs(driver) == []
        driver.pipe_input("prices", "b", 8, timestamp=10)  # a is due at 0 + 10: its latest value goes
        assert outputs(driver) == [("a", 2, 5)]
        driver.pipe_input("prices", "a", None, timestamp=12)  # a delete is held back and emitted like a value
        driver.pipe_input("prices", "c", 1, timestamp=19)  # b is due at 9 + 10
        assert outputs(driver) == [("b", 8, 10)]
        driver.pipe_input("prices", "c", 2, timestamp=30)
        assert outputs(driver) == [("a", None, 12), ("c", 2, 30)]
        assert len(list(driver.tasks["0_0"].stores["calm-store"].items())) == 1  # only the stream time is left


def test_a_zero_limit_passes_every_update_through():
    with TestDriver(rate_limited(timedelta(0))) as driver:
        for n in range(3):
            driver.pipe_input("prices", "a", n, timestamp=n)
        assert outputs(driver) == [("a", 0, 0), ("a", 1, 1), ("a", 2, 2)]


def test_a_full_buffer_emits_its_oldest_keys_early():
    with TestDriver(rate_limited(1000, max_records=2)) as driver:
        driver.pipe_input("prices", "a", 1, timestamp=1)
        driver.pipe_input("prices", "b", 1, timestamp=2)
        driver.pipe_input("prices", "a", 2, timestamp=3)  # still two keys
        assert outputs(driver) == []
        driver.pipe_input("prices", "c", 1, timestamp=4)
        assert outputs(driver) == [("a", 2, 3)]
        assert driver.tasks["0_0"].metrics.get("suppress_early_emits") == 1
    with TestDriver(rate_limited(1000, max_bytes=8)) as driver:  # "a" + "12345" is 6 bytes, "b" + "1" 2 more
        driver.pipe_input("prices", "a", 12345, timestamp=1)
        driver.pipe_input("prices", "b", 1, timestamp=2)
        assert outputs(driver) == []
        driver.pipe_input("prices", "b", 10, timestamp=3)
        assert outputs(driver) == [("a", 12345, 1)]


def test_a_full_buffer_fails_when_told_to():
    with TestDriver(rate_limited(1000, max_records=1, when_full="fail")) as driver:
        driver.pipe_input("prices", "a", 1, timestamp=1)
        driver.pipe_input("prices", "a", 2, timestamp=2)
        with pytest.raises(BufferFullError, match=r"suppress 'calm'.*2 records.*max_records=1"):
            driver.pipe_input("prices", "b", 1, timestamp=3)


def test_suppression_arguments_are_checked():
    app = make_app()
    with pytest.raises(TypeError, match="windowed table"):
        app.table("t").suppress(until_window_closes())
    with pytest.raises(TypeError, match="until_time_limit"):
        app.table("t2").suppress(10)
    with pytest.raises(ValueError, match="when_full"):
        until_time_limit(10, when_full="drop")
    with pytest.raises(ValueError, match="max_records"):
        until_time_limit(10, max_records=0)
    with pytest.raises(ValueError, match="max_bytes"):
        until_window_closes(max_bytes=-1)
    with pytest.raises(ValueError, match="limit must not be negative"):
        until_time_limit(timedelta(seconds=-1))


def test_a_windowed_table_can_be_rate_limited():
    app = make_app()
    app.stream("clicks").group_by_key().window(Tumbling(100)).count(name="n").suppress(
        until_time_limit(10), name="calm").to("out")
    with TestDriver(app) as driver:
        for ts in (1, 5, 9, 11, 12, 150):
            driver.pipe_input("clicks", "a", "x", timestamp=ts)
        got = [(r.key.start, r.value, r.timestamp) for r in driver.read_output("out", key_serde=WINDOWED)]
        # The window's first update at 1 is due at 11, with its count then; the next one, at 12, is due at 22.
        assert got == [(0, 4, 11), (0, 5, 12)]


def test_until_window_closes_fails_when_its_buffer_is_full():
    app = make_app()
    app.stream("clicks").group_by_key().window(Tumbling(10)).count(name="n").suppress(
        until_window_closes(max_records=1)).to("out")
    with TestDriver(app) as driver:
        driver.pipe_input("clicks", "a", 1, timestamp=1)
        with pytest.raises(BufferFullError):
            driver.pipe_input("clicks", "b", 1, timestamp=2)


def collect(key, value, ids):
    return sorted([*ids, value])


def merge(key, a, b):
    return sorted(a + b)


windows = st.one_of(
    st.builds(Tumbling, st.integers(1, 10), st.integers(0, 5)),
    st.builds(lambda size, advance, grace: Hopping(size, min(advance, size), grace),
              st.integers(2, 10), st.integers(1, 10), st.integers(0, 5)),
    st.builds(Sliding, st.integers(1, 8), st.integers(0, 5)),
    st.builds(Session, st.integers(1, 8), st.integers(0, 5)),
)
events = st.lists(st.tuples(st.sampled_from("ab"), st.integers(0, 40)), max_size=30)


@PROPERTY
@given(windows, events)
def test_until_window_closes_emits_what_emit_final_emits(window, events):
    app = make_app()
    grouped = app.stream("events").group_by_key()
    grouped.window(window).aggregate(list, collect, merger=merge, name="updates").suppress(
        until_window_closes(), name="finals").to("suppressed")
    grouped.window(window).aggregate(list, collect, merger=merge, name="final", emit="final").to("final")
    with TestDriver(app) as driver:
        for n, (key, ts) in enumerate(events):
            driver.pipe_input("events", key, n, timestamp=ts)
            suppressed = sorted(outputs_of(driver, "suppressed"), key=repr)
            assert suppressed == sorted(outputs_of(driver, "final"), key=repr), f"step {n}"


def outputs_of(driver: TestDriver, topic: str) -> list[tuple]:
    return [(r.key, r.value, r.timestamp) for r in driver.read_output(topic, key_serde=WINDOWED)]


# -- restarts and aborts over RocksDB


def suppress_task(driver: TestDriver, path) -> Task:
    plan = driver.plan.tasks["0_0"]
    stores = {s.name: TaskStore(s, 0, path / s.name) for s in plan.subtopology.stores}
    return Task(plan, "suppress", driver.partition_counts, driver.error_policy, stores=stores)


def feed(task: Task, start: int, records: list[tuple[str, int, int]]) -> list[tuple]:
    raws = [RawRecord("prices", 0, start + n, ts, key.encode(), orjson.dumps(value), ())
            for n, (key, value, ts) in enumerate(records)]
    task.process({TopicPartition("prices", 0): raws})
    return [(r.key.decode(), orjson.loads(r.value), r.timestamp) for r in task.take_output()]


def commit(task: Task) -> None:
    task.changelog_output()
    task.checkpoint_stores({})


INPUT = [("a", 1, 0), ("b", 1, 3), ("a", 2, 6), ("c", 5, 8), ("b", 3, 12), ("d", 1, 15), ("c", 9, 21)]


def test_the_buffer_survives_a_restart_and_an_aborted_batch(tmp_path):
    with TestDriver(rate_limited(10)) as driver:
        reference = suppress_task(driver, tmp_path / "reference")
        expected = feed(reference, 0, INPUT)
        reference.close()

        task = suppress_task(driver, tmp_path / "run")
        got = feed(task, 0, INPUT[:3])
        commit(task)
        task.close()
        task = suppress_task(driver, tmp_path / "run")  # restarted: a and b are still buffered
        aborted = feed(task, 3, INPUT[3:5])
        assert aborted == [("a", 2, 6)]
        task.discard_stores()  # that batch's transaction aborts: its output is never seen, its buffer changes go
        task.close()
        task = suppress_task(driver, tmp_path / "run")
        got += feed(task, 3, INPUT[3:])
        commit(task)
        task.close()
    assert got == expected == [("a", 2, 6), ("b", 3, 12), ("c", 9, 21)]
