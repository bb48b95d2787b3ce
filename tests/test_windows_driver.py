"""Windowed aggregations through the TestDriver: examples of each kind, late data, retention, idle close,
queries, validation, and a restart over RocksDB stores (pure, no broker)."""

from __future__ import annotations

import contextlib
import logging
import struct
from datetime import timedelta

import pytest

from streams import App
from streams.compiler.compile import plan_tasks
from streams.partitioner import partition_for
from streams.runtime.stores import TaskStore
from streams.task.errors_policy import ErrorPolicy
from streams.task.task import Task
from streams.testing import TestDriver
from streams.transport.base import RawRecord, TopicPartition
from streams.windows import Hopping, Session, Sliding, Tumbling, Windowed, WindowedJsonSerde, WindowedSerde
from streams.windows.store import INDEX, WINDOWS

W = WindowedJsonSerde()


def make_app() -> App:
    return App("wunit", brokers="unused:9092")


def pipe(driver: TestDriver, records, topic: str = "in") -> None:
    for key, ts, *value in records:
        driver.pipe_input(topic, key, value[0] if value else 1, timestamp=ts)


def results(driver: TestDriver, topic: str = "out") -> list[tuple]:
    return [(r.key.key, r.key.start, r.key.end, r.value) for r in driver.read_output(topic, key_serde=W)]


def test_tumbling_count_updates_then_final_results():
    app = make_app()
    grouped = app.stream("in").group_by_key()
    grouped.window(Tumbling(timedelta(seconds=10), grace=2000)).count(name="upd").to("updates")
    grouped.window(Tumbling(10_000, grace=timedelta(seconds=2))).count(name="fin", emit="final").to("finals")
    with TestDriver(app) as driver:
        pipe(driver, [("a", 1_000), ("b", 4_000), ("a", 9_999), ("a", 10_000), ("a", 11_000)])
        assert results(driver, "finals") == []
        pipe(driver, [("a", 8_000)])  # out of order, within grace
        pipe(driver, [("a", 12_000)])  # stream time reaches 10 s + grace: [0, 10 s) closes
        assert results(driver, "finals") == [("a", 0, 10_000, 3), ("b", 0, 10_000, 1)]
        pipe(driver, [("a", 7_000)])  # late: its window has closed
        assert results(driver, "updates") == [
            ("a", 0, 10_000, 1), ("b", 0, 10_000, 1), ("a", 0, 10_000, 2), ("a", 10_000, 20_000, 1),
            ("a", 10_000, 20_000, 2), ("a", 0, 10_000, 3), ("a", 10_000, 20_000, 3),
        ]
        assert driver.tasks["0_0"].metrics.get("late_records") == 2  # once per windowed aggregation
        pipe(driver, [("c", 40_000)])
        assert results(driver, "finals") == [("a", 10_000, 20_000, 3)]


def test_result_timestamp_is_the_newest_record_in_the_window():
    app = make_app()
    app.stream("in").group_by_key().window(Tumbling(100)).count(emit="final").to("out")
    with TestDriver(app) as driver:
        pipe(driver, [("a", 50), ("a", 20), ("a", 300)])
        [record] = driver.read_output("out", key_serde=W)
    assert record.key == Windowed("a", 0, 100) and record.value == 2 and record.timestamp == 50


def test_hopping_record_lands_in_every_window_holding_it():
    app = make_app()
    app.stream("in").group_by_key().window(Hopping(10, 4)).count().to("out")
    with TestDriver(app) as driver:
        pipe(driver, [("a", 9)])
        assert results(driver) == [("a", 0, 10, 1), ("a", 4, 14, 1), ("a", 8, 18, 1)]


def test_hopping_windows_never_start_before_the_epoch():
    """Kafka Streams drops the windows [-8, 2) and [-4, 6) that would also hold a record at 1."""
    app = make_app()
    app.stream("in").group_by_key().window(Hopping(10, 4)).count().to("out")
    with TestDriver(app) as driver:
        pipe(driver, [("a", 1), ("a", 5)])
        assert results(driver) == [("a", 0, 10, 1), ("a", 0, 10, 2), ("a", 4, 14, 1)]
        assert driver.tasks["0_0"].metrics.get("late_records") == 0
    assert Hopping(10, 4).starts_for(1) == [0]
    assert Hopping(10, 4).starts_for(-3) == [] and Tumbling(5).starts_for(-1) == []


def test_sliding_windows_follow_the_records():
    app = make_app()
    app.stream("in").group_by_key().window(Sliding(10, grace=20)).count(name="s").to("out")
    with TestDriver(app) as driver:
        pipe(driver, [("a", 10)])
        assert results(driver) == [("a", 0, 10, 1)]
        pipe(driver, [("a", 15)])  # its left window, and the first record's right window
        assert sorted(results(driver)) == [("a", 5, 15, 2), ("a", 11, 21, 1)]
        pipe(driver, [("a", 25)])
        assert sorted(results(driver)) == [("a", 15, 25, 2), ("a", 16, 26, 1)]
        pipe(driver, [("a", 12)])  # out of order: joins the windows holding it, gets a left and a right window
        assert sorted(results(driver)) == [("a", 2, 12, 2), ("a", 5, 15, 3), ("a", 11, 21, 2), ("a", 13, 23, 1)]
        assert [(w.start, n) for w, n in driver.store("s").fetch("a")] == [
            (0, 1), (2, 2), (5, 3), (11, 2), (13, 1), (15, 2), (16, 1)]


@pytest.mark.parametrize("exact, expected", [
    # Kafka Streams' rules: 116 and 121 arrive when their own left windows have closed, so those are
    # never made; [116, 126] starts from nothing and [117, 127] (116's right window) never exists.
    (False, [(90, 100, 1), (116, 126, 1), (120, 130, 3), (122, 132, 2), (127, 137, 1)]),
    # exact=True makes the closed windows too (never emitting them), so later copies are exact.
    (True, [(90, 100, 1), (116, 126, 3), (117, 127, 2), (120, 130, 3), (122, 132, 2), (127, 137, 1)]),
])
def test_sliding_windows_built_from_closed_ones(exact, expected):
    app = make_app()
    app.stream("in").group_by_key().window(Sliding(10, grace=5, exact=exact)).count(emit="final").to("out")
    with TestDriver(app) as driver:
        pipe(driver, [("a", ts) for ts in (100, 130, 116, 121, 126, 200)])
        assert sorted(r[1:] for r in results(driver)) == expected
        assert driver.tasks["0_0"].metrics.get("late_records") == 0


def test_a_sliding_window_changed_at_its_close_is_emitted_again():
    # As with Kafka Streams' suppress(): with grace 0, [10, 20] is due when 20 arrives, which first
    # updates [12, 22] (closing the due windows) and then [10, 20], which goes out again.
    app = make_app()
    app.stream("in").group_by_key().window(Sliding(10)).count(emit="final").to("out")
    with TestDriver(app) as driver:
        pipe(driver, [("a", 9), ("a", 11), ("a", 15)])
        assert results(driver) == [("a", -1, 9, 1), ("a", 1, 11, 2), ("a", 5, 15, 3)]
        pipe(driver, [("a", 20)])
        assert [(r.key.start, r.key.end, r.value, r.timestamp) for r in driver.read_output("out", key_serde=W)] == [
            (10, 20, 2, 15), (10, 20, 3, 20)]


@pytest.mark.parametrize("retention", [None, 15, 100, 10_000])
def test_a_late_record_within_the_gap_of_a_session_at_the_close_time(retention):
    # At stream time 15, [0, 0] ends exactly at the close time (15 - 10 - 5): it is not closed,
    # so 5 merges with it whatever the retention.
    app = make_app()
    app.stream("in").group_by_key().window(Session(10, grace=5)).count(emit="final", retention=retention).to("out")
    with TestDriver(app) as driver:
        pipe(driver, [("a", 0), ("b", 15), ("a", 5), ("b", 40)])
        assert results(driver) == [("a", 0, 0, 1), ("a", 0, 5, 2), ("b", 15, 15, 1)]
        assert driver.tasks["0_0"].metrics.get("late_records") == 0


@pytest.mark.parametrize("retention", [None, 7_000, 8_000, 60_000, 3_600_000])
def test_session_results_do_not_depend_on_retention(retention):
    # 8000 arrives at stream time 12000, when [1000, 3000] has closed (3000 < 12000 - 5000 - 2000):
    # it never sees the closed session, and joins the open [9000, 12000].
    app = make_app()
    grouped = app.stream("in").group_by_key().window(Session(5_000, grace=2_000))
    grouped.count(emit="final", retention=retention).to("out")
    with TestDriver(app) as driver:
        pipe(driver, [("k", t) for t in (1000, 3000, 9000, 12000, 8000, 40000)])
        assert results(driver) == [("k", 1000, 3000, 2), ("k", 8000, 12000, 3)]
        assert driver.tasks["0_0"].metrics.get("late_records") == 0


def test_sessions_merge_and_emit_tombstones_for_merged_sessions():
    app = make_app()
    grouped = app.stream("in").group_by_key()
    grouped.window(Session(10, grace=30)).count(name="sessions").to("out")
    grouped.window(Session(10, grace=30)).reduce(lambda a, b: a + b, name="sums", emit="final").to("sums")
    with TestDriver(app) as driver:
        pipe(driver, [("a", 0, 1), ("a", 25, 2)])
        assert results(driver) == [("a", 0, 0, 1), ("a", 25, 25, 1)]
        pipe(driver, [("a", 12, 4)])  # within the gap of neither session
        assert results(driver) == [("a", 12, 12, 1)]
        pipe(driver, [("a", 8, 8)])  # bridges [0, 0] and [12, 12]
        assert results(driver) == [("a", 0, 0, None), ("a", 12, 12, None), ("a", 0, 12, 3)]
        pipe(driver, [("a", 18, 16)])  # bridges [0, 12] and [25, 25]
        assert results(driver) == [("a", 0, 12, None), ("a", 25, 25, None), ("a", 0, 25, 5)]
        assert driver.store("sessions").fetch("a") == [(Windowed("a", 0, 25), 5)]
        assert results(driver, "sums") == []
        pipe(driver, [("b", 64, 0)])
        assert results(driver, "sums") == []
        pipe(driver, [("b", 65, 0)])  # stream time reaches end + gap + grace: the session closes
        assert results(driver, "sums") == [("a", 0, 25, 31)]


def test_session_aggregate_needs_a_merger_and_uses_it():
    app = make_app()
    windowed = app.stream("in").group_by_key().window(Session(5, grace=10))
    with pytest.raises(ValueError, match="merger"):
        windowed.aggregate(list, lambda k, v, agg: [*agg, v])
    merges = []

    def merger(key, a, b):
        merges.append((key, a, b))
        return a + b

    windowed.aggregate(list, lambda k, v, agg: [*agg, v], merger=merger).to("out")
    with TestDriver(app) as driver:
        pipe(driver, [("k", 0, "x"), ("k", 10, "y"), ("k", 5, "z")])
        assert results(driver)[-1] == ("k", 0, 10, ["x", "y", "z"])
    assert merges == [("k", [], ["x"]), ("k", ["x"], ["y"])]  # from initializer(), oldest session first


def test_late_records_are_counted_and_logged_at_warning(caplog):
    app = make_app()
    app.stream("in").group_by_key().window(Tumbling(10, grace=5)).count().to("out")
    with TestDriver(app) as driver, caplog.at_level(logging.WARNING, logger="streams.processors.late"):
        pipe(driver, [("a", 100), ("a", 94), ("a", 89), ("a", 80)])
        assert [r.value for r in driver.read_output("out")] == [1, 1]
        assert driver.tasks["0_0"].metrics.get("late_records") == 2
    # the first drop is reported at once, the next within the report interval only counted
    assert sum("dropped 1 late record(s)" in m and "at 89" in m for m in caplog.messages) == 1
    assert len(caplog.messages) == 1


def test_null_keys_and_values_are_dropped():
    app = make_app()
    app.stream("in").group_by_key().window(Tumbling(10)).count().to("out")
    with TestDriver(app) as driver:
        driver.pipe_input("in", None, 1, timestamp=1)
        driver.pipe_input("in", "a", None, timestamp=1)
        assert driver.read_output("out") == []
        assert driver.tasks["0_0"].metrics.get("dropped_null_records") == 2


def test_a_failing_aggregator_changes_no_window():
    app = make_app()
    app.stream("in").group_by_key().window(Hopping(10, 5)).aggregate(
        lambda: 0, lambda k, v, total: total + 10 // v, name="h").to("out")
    with TestDriver(app) as driver:
        pipe(driver, [("a", 7, 1), ("a", 8, 0), ("a", 9, 2)])
        assert [w.start for w, _ in driver.store("h").fetch("a")] == [0, 5]
        assert [total for _, total in driver.store("h").fetch("a")] == [15, 15]
        dead = driver.read_output("wunit-dlq", value_serde="bytes")
    assert len(dead) == 1 and dict(dead[0].headers)["streams.error.type"] == b"ZeroDivisionError"


def store_entries(driver: TestDriver, name: str) -> dict[bytes, int]:
    counts = {WINDOWS: 0, INDEX: 0}
    for task in driver.tasks.values():
        for key, _ in task.stores[name].items():
            counts[key[:1]] = counts.get(key[:1], 0) + 1
    return counts


@pytest.mark.parametrize("window", [Tumbling(100), Hopping(100, 25), Sliding(50), Session(30)], ids=repr)
def test_retention_keeps_the_store_bounded(window):
    app = make_app()
    app.stream("in").group_by_key().window(window).count(name="c", emit="final").to("out")
    keys = 20
    with TestDriver(app) as driver:
        stamps = [i * 7 - (i % 5) * 3 for i in range(5_000)]
        for i, ts in enumerate(stamps):
            driver.pipe_input("in", f"k{i % keys}", 1, timestamp=ts)
        entries = store_entries(driver, "c")
        finals = driver.read_output("out", key_serde=W)
    assert sum(r.value for r in finals) > 4_000 and max(stamps) > 100 * window.min_retention
    # Each key keeps only the windows indexed within one retention of stream time; a key's
    # records come every keys * 7 ms.
    spacing = keys * 7
    per_key = {"time": window.min_retention // getattr(window, "advance", 1) + 1,
               "sliding": 2 * ((window.min_retention + 50) // spacing + 2), "session": 2}[window.kind]
    assert entries[WINDOWS] == entries[INDEX] <= keys * per_key
    assert entries[b"m"] == 2  # the stream time and the store time


def test_retention_option_keeps_closed_windows_queryable_and_refuses_less_than_needed():
    app = make_app()
    windowed = app.stream("in").group_by_key().window(Tumbling(10, grace=5))
    with pytest.raises(ValueError, match="below"):
        windowed.count(retention=14)
    windowed.count(name="long", retention=timedelta(milliseconds=100))
    windowed.count(name="short")
    with TestDriver(app) as driver:
        pipe(driver, [("a", 1), ("a", 50)])
        assert [w.start for w, _ in driver.store("long").fetch("a")] == [0, 50]
        assert [w.start for w, _ in driver.store("short").fetch("a")] == [50]
    topology = app.topology()
    spec = topology.stores["long"]
    assert spec.options["cleanup.policy"] == "compact,delete"
    assert int(spec.options["topic_config"]["retention.ms"]) >= 100


def test_idle_close_emits_open_windows_after_wall_clock_idleness():
    app = make_app()
    app.stream("in").group_by_key().window(Tumbling(10)).count(name="c", emit="final", idle_close=1_000).to("out")
    with TestDriver(app) as driver:
        pipe(driver, [("a", 3), ("a", 5), ("b", 12)])
        assert results(driver) == [("a", 0, 10, 2)]
        driver.advance_wall_clock(600)
        assert results(driver) == []
        driver.advance_wall_clock(600)
        assert results(driver) == [("b", 10, 20, 1)]
        pipe(driver, [("b", 15)])  # its window was closed by the idle close
        assert driver.tasks["0_0"].metrics.get("late_records") == 1
        pipe(driver, [("b", 21)])
        driver.advance_wall_clock(999)
        assert results(driver) == []
        driver.advance_wall_clock(1)
        assert results(driver) == [("b", 20, 30, 1)]


def test_options_are_validated():
    app = make_app()
    grouped = app.stream("in").group_by_key()
    with pytest.raises(TypeError):
        grouped.window(10)
    with pytest.raises(ValueError, match="emit"):
        grouped.window(Tumbling(10)).count(emit="sometimes")
    with pytest.raises(ValueError, match="idle_close"):
        grouped.window(Tumbling(10)).count(idle_close=5)
    with pytest.raises(ValueError, match="advance"):
        Hopping(10, 20)
    with pytest.raises(ValueError):
        Tumbling(0)
    with pytest.raises(ValueError):
        Session(10, grace=-1)
    with pytest.raises(TypeError):
        Sliding(1.5)


def test_queries_separate_keys_that_prefix_each_other():
    app = make_app()
    table = app.stream("in").group_by_key().window(Tumbling(10)).count(name="c", retention=1_000)
    with TestDriver(app, partitions={"in": 3}) as driver:
        pipe(driver, [("b", 5), ("a", 1), ("ab", 2), ("a", 13), ("ab", 25)])
        view = driver.store("c")
        assert view.fetch("a") == [(Windowed("a", 0, 10), 1), (Windowed("a", 10, 20), 1)]
        assert view.fetch("a", 5, 10) == [(Windowed("a", 10, 20), 1)]
        assert view.fetch("ab", time_to=19) == [(Windowed("ab", 0, 10), 1)]
        assert sorted(view.fetch_all(0, 0)) == [(Windowed("a", 0, 10), 1), (Windowed("ab", 0, 10), 1),
                                                (Windowed("b", 0, 10), 1)]
        assert view.get(Windowed("ab", 20, 30)) == 1 and view.get(Windowed("x", 0, 10), 0) == 0
        assert len(view) == 5
    with pytest.raises(RuntimeError, match="running worker"):
        app.store(table.store_name).fetch("a")


def test_windowed_serdes_round_trip():
    for serde, key in ((WindowedSerde("int"), Windowed(42, -5, 10)), (WindowedJsonSerde(), Windowed("a", 0, 10)),
                       (WindowedJsonSerde("json"), Windowed({"user": [1, "x"]}, 5, 9))):
        assert serde.deserialize(serde.serialize(key)) == key
        assert serde.serialize(None) is None and serde.deserialize(None) is None
        with pytest.raises(TypeError):
            serde.serialize(42)
    with pytest.raises(TypeError, match="cannot be written as JSON.*WindowedSerde"):
        WindowedJsonSerde("bytes").serialize(Windowed(b"raw", 0, 10))


def test_windowed_results_are_json_keys_partitioned_by_the_inner_key():
    """They were the inner key's bytes plus two int64s, and hashed whole: a key's windows scattered."""
    app = make_app()
    counts = app.stream("in").group_by_key().window(Tumbling(10)).count()
    counts.to("out")
    counts.to("binary", key_serde=WindowedSerde("str"))
    plan = plan_tasks(app.topology(), {"in": 1})
    counts_by_topic = {**plan.partition_counts, "out": 4, "binary": 4}
    task = Task(plan.tasks["0_0"], "wunit", counts_by_topic, ErrorPolicy("dlq", "wunit-dlq"),
                stores={s.name: TaskStore(s, 0, None) for s in plan.tasks["0_0"].subtopology.stores})
    keys = ["ada", "bob", "cy", "dee", "eve", "fay"]
    task.process({TopicPartition("in", 0): [RawRecord("in", 0, i, ts, key.encode(), b"1", ())
                                            for i, (key, ts) in enumerate((k, t) for t in (1, 15, 27) for k in keys)]})
    output = task.take_output()
    json_keys = [(r.key, r.partition) for r in output if r.topic == "out"]
    assert json_keys[:2] == [(b'{"key":"ada","start":0,"end":10}', partition_for(b"ada", 4)),
                             (b'{"key":"bob","start":0,"end":10}', partition_for(b"bob", 4))]
    binary = [(r.key, r.partition) for r in output if r.topic == "binary"]
    assert binary[0] == (b"ada" + struct.pack(">qq", 0, 10), partition_for(b"ada", 4))
    for written in (json_keys, binary):
        assert len(written) == 18
        for key in keys:
            windows = [p for k, p in written if (k.startswith(key.encode()) or f'"{key}"'.encode() in k)]
            assert windows == [partition_for(key.encode(), 4)] * 3, key
    assert len({p for _k, p in json_keys}) > 1


def test_group_by_repartitions_before_windowing():
    app = make_app()
    app.stream("in").group_by(lambda k, v: v["user"], name="by-user").window(Tumbling(10)).count(
        name="c", emit="final").to("out")
    assert "wunit-by-user-repartition" in app.topology().repartition_topics
    with TestDriver(app, partitions={"in": 2}) as driver:
        for i, user in enumerate(["x", "y", "x", "x"]):
            driver.pipe_input("in", f"k{i}", {"user": user}, timestamp=i)
        for p in range(2):  # advance stream time in every downstream task
            driver.pipe_input("in", "flush", {"user": "x" if p else "y"}, timestamp=100)
        assert sorted(results(driver)) == [("x", 0, 10, 3), ("y", 0, 10, 1)]


def open_task(driver: TestDriver, path) -> Task:
    plan = driver.plan.tasks["0_0"]
    stores = {s.name: TaskStore(s, 0, path / s.name) for s in plan.subtopology.stores}
    return Task(plan, "wunit", driver.partition_counts, driver.error_policy, stores=stores)


def feed(task: Task, records, offset: int) -> list:
    raws = [RawRecord("in", 0, offset + i, ts, key.encode(), b"1", ()) for i, (key, ts) in enumerate(records)]
    task.process({TopicPartition("in", 0): raws})
    task.changelog_output()
    task.checkpoint_stores({})
    return [(W.deserialize(r.key), int(r.value)) for r in task.take_output() if r.topic == "out"]


def test_restart_over_rocksdb_keeps_open_windows_and_stream_time(tmp_path):
    app = make_app()
    app.stream("in").group_by_key().window(Session(10)).count(name="c", emit="final").to("out")
    with TestDriver(app) as driver:
        task = open_task(driver, tmp_path)
        assert feed(task, [("a", 100), ("b", 105), ("a", 108), ("a", 114)], 0) == []
        task.close()
        task = open_task(driver, tmp_path)  # a new task over the same state directory
        assert feed(task, [("a", 80)], 4) == []  # late: stream time 114 survived the restart
        assert task.metrics.get("late_records") == 1
        assert feed(task, [("c", 115)], 5) == [(Windowed("b", 105, 105), 1)]
        assert feed(task, [("c", 123)], 6) == []
        assert feed(task, [("c", 124)], 7) == [(Windowed("a", 100, 114), 3)]
        task.close()


def test_a_batch_runs_the_tasks_of_a_regrouping_interleaved_by_event_time():
    """A worker reading a backlog gets each partition's records in one batch.  Run task by task, the
    repartition topic received partition 0's whole time range before partition 1's."""
    def regrouped() -> App:
        app = make_app()
        app.stream("in").group_by(lambda key, visit: visit["user"], name="by-user").window(
            Tumbling(10_000, grace=2_000)).count(name="visits", retention=3_600_000)
        return app

    visits = [(f"k{i}", {"user": f"u{i % 5}"}, i * 200, i % 2) for i in range(600)]  # 2 minutes, in order
    for batched in (True, False):
        with TestDriver(regrouped(), partitions={"in": 2}) as driver:
            with driver.batch() if batched else contextlib.nullcontext():
                for partition in (0, 1):  # as one poll holds them: partition by partition
                    for key, value, ts, p in visits:
                        if p == partition:
                            driver.pipe_input("in", key, value, timestamp=ts, partition=p)
            late = sum(task.metrics.get("late_records") for task in driver.tasks.values())
            counted = sum(count for _window, count in driver.store("visits").fetch_all())
        if batched:
            assert (late, counted) == (0, 600)
        else:  # one record at a time, in pipe order: what the worker did with a whole poll
            assert late > 250 and counted == 600 - late
