"""close_on_wall_clock for left and outer stream-stream joins, through the TestDriver's wall clock: an unmatched
record on a quiet partition is emitted once its window plus grace has passed in wall-clock time; off by
default; a matched record never is; stream time that keeps moving restarts the idle clock."""

from __future__ import annotations

import pytest

from streams import App
from streams.runtime.stores import TaskStore
from streams.task.task import Task
from streams.testing import TestDriver
from streams.windows import JoinWindows


def pair(left, right):
    return [left, right]


def join_app(kind: str = "left", close_on_wall_clock: bool = True, late: str = "join") -> App:
    app = App("wallclock", brokers="unused:9092")
    left, right = app.stream("left"), app.stream("right")
    options = {"close_on_wall_clock": True} if close_on_wall_clock else {}
    getattr(left, f"{kind}_join")(right, pair, window=JoinWindows(before=0, after=10, grace=5, late=late), name="j",
                                  **options).to("out")
    return app


@pytest.mark.parametrize("late, then", [
    ("drop", []),  # L1 left its buffer with its result: R1 finds no match (and is not late either)
    ("join", [("a", ["L1", "R1"], 105)]),  # Kafka Streams' rules: L1 is still kept, and the late match follows
])
def test_an_unmatched_record_on_a_quiet_partition_is_emitted_after_window_and_grace_of_wall_clock(late, then):
    with TestDriver(join_app(late=late)) as driver:
        driver.pipe_input("left", "a", "L1", timestamp=100)
        driver.advance_wall_clock(1)  # the punctuation sees stream time at 100 from here on
        driver.advance_wall_clock(15)  # 100 + 15 = 115: L1's window (up to 110, grace to 115) is not past yet
        assert driver.read_output("out") == []
        driver.advance_wall_clock(1)
        assert [(r.key, r.value, r.timestamp) for r in driver.read_output("out")] == [("a", ["L1", None], 100)]
        assert driver.tasks["0_0"].metrics.get("wall_clock_unmatched") == 1
        driver.pipe_input("right", "a", "R1", timestamp=105)
        driver.advance_wall_clock(1000)
        assert [(r.key, r.value, r.timestamp) for r in driver.read_output("out")] == then


def test_off_by_default():
    with TestDriver(join_app(close_on_wall_clock=False)) as driver:
        driver.pipe_input("left", "a", "L1", timestamp=100)
        for _ in range(3):
            driver.advance_wall_clock(60_000)
        assert driver.read_output("out") == []
        driver.pipe_input("left", "z", "tick", timestamp=116)  # stream time alone closes it
        assert driver.read_key_values("out") == [("a", ["L1", None])]


def test_outer_join_emits_both_sides_and_never_a_matched_record():
    with TestDriver(join_app("outer")) as driver:
        driver.pipe_input("left", "a", "L1", timestamp=100)
        driver.pipe_input("right", "a", "R1", timestamp=104)
        driver.pipe_input("right", "b", "R2", timestamp=106)
        assert driver.read_key_values("out") == [("a", ["L1", "R1"])]
        driver.advance_wall_clock(1)
        driver.advance_wall_clock(20)
        assert driver.read_key_values("out") == [("b", [None, "R2"])]


def test_moving_stream_time_restarts_the_idle_clock():
    with TestDriver(join_app()) as driver:
        for n in range(5):  # a record per punctuation: stream time keeps moving, so nothing is closed early
            driver.pipe_input("left", f"k{n}", n, timestamp=100 + n)
            driver.advance_wall_clock(1000)
        assert driver.read_output("out") == []
        driver.advance_wall_clock(12)  # 104 + 12 = 116: everything up to 100 has passed its 15 ms
        assert driver.read_key_values("out") == [("k0", [0, None])]


def test_a_restarted_task_emits_what_its_buffer_still_holds(tmp_path):
    now = [0]
    with TestDriver(join_app()) as driver:
        plan = driver.plan.tasks["0_0"]

        def task() -> Task:
            stores = {s.name: TaskStore(s, 0, tmp_path / s.name) for s in plan.subtopology.stores}
            return Task(plan, "wallclock", driver.partition_counts, driver.error_policy, stores=stores,
                        clock=lambda: now[0])

        first = task()
        driver.tasks["0_0"] = first
        driver.pipe_input("left", "a", "L1", timestamp=100)
        first.close()
        second = driver.tasks["0_0"] = task()  # the idle clock starts again at the restart
        now[0] = 1
        second.punctuate()
        now[0] = 17
        second.punctuate()
        assert [(r.key, r.value) for r in second.take_output()] == [(b"a", b'["L1",null]')]
        second.close()


def test_the_setting_is_for_windowed_joins_of_streams():
    app = App("wallclock", brokers="unused:9092")
    with pytest.raises(TypeError, match="two streams"):
        app.stream("s").left_join(app.table("t"), pair, close_on_wall_clock=True)
