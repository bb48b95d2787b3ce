"""A timer that raises: logged, and the worker goes on; under on_error="fail" the worker stops after a commit.

Against the real broker.  One exception in a timer used to stop the worker and
skip its final commit.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams import App
from streams.errors import TimerError
from streams.runtime.scheduler import ManualClock, Schedule, Scheduler, every
from tests.conftest import create_topics, unique_name
from tests.kafka_helpers import FAST_GROUP, produce, read_topic, running, wait_for


def timer_app(brokers: str, tmp_path, src: str, out: str) -> tuple[App, list[int]]:
    app = App(unique_name("timers"), brokers=brokers, state_dir=tmp_path, commit_interval=0.2,
              consumer_config=FAST_GROUP)
    app.stream(src).map_values(lambda v: v + 1).to(out)
    ticks: list[int] = []

    @app.timer(0.1)
    def flaky():
        ticks.append(len(ticks))
        if len(ticks) % 2 == 1:
            raise RuntimeError(f"tick {len(ticks)} failed")

    return app, ticks


async def committed(brokers: str, group: str, topic: str) -> int | None:
    consumer = AIOKafkaConsumer(bootstrap_servers=brokers, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return await consumer.committed(TopicPartition(topic, 0))
    finally:
        await consumer.stop()


async def test_a_failing_timer_is_logged_and_the_worker_goes_on(brokers, tmp_path, caplog):
    src, out = unique_name("in"), unique_name("out")
    await create_topics(brokers, {src: 1, out: 1})
    app, ticks = timer_app(brokers, tmp_path, src, out)
    await produce(brokers, src, [(f"k{i}", i) for i in range(10)])
    with caplog.at_level(logging.ERROR, "streams.runtime.scheduler"):
        async with running(app) as worker:
            await read_topic(brokers, out, expected=10)
            await wait_for(lambda: len(ticks) >= 6)
            await produce(brokers, src, [(f"k{i}", i) for i in range(10, 20)])  # still processing
            got = await read_topic(brokers, out, expected=20)
            await wait_for(lambda: worker.scheduler.failures >= 3)
    assert sorted(int(r.value) for r in got) == list(range(1, 21))
    assert await committed(brokers, app.app_id, src) == 20
    failures = [r for r in caplog.records if "timer flaky failed" in r.getMessage()]
    assert failures and all(r.exc_info and "failed" in str(r.exc_info[1]) for r in failures)


async def test_under_fail_a_failing_timer_stops_the_worker_after_committing(brokers, tmp_path):
    src, out = unique_name("in"), unique_name("out")
    await create_topics(brokers, {src: 1, out: 1})
    app = App(unique_name("timers"), brokers=brokers, state_dir=tmp_path, commit_interval=60,
              consumer_config=FAST_GROUP, on_error="fail")
    app.stream(src).map_values(lambda v: v + 1).to(out)
    armed: list[bool] = []

    @app.timer(0.1)
    def watchdog():
        if armed:
            raise RuntimeError("tripped")

    await produce(brokers, src, [(f"k{i}", i) for i in range(10)])
    worker = app.create_worker()
    await worker.start()
    try:
        loop = asyncio.create_task(worker.loop())
        await read_topic(brokers, out, expected=10)
        await wait_for(lambda: worker.tasks and sum(worker.tasks["0_0"].offsets.values()) == 10)
        armed.append(True)  # no commit yet: the interval is a minute
        with pytest.raises(TimerError, match="timer 'watchdog' failed: RuntimeError: tripped"):
            await asyncio.wait_for(loop, 30)
    finally:
        await worker.shutdown(commit=False)
    assert await committed(brokers, app.app_id, src) == 10


async def test_the_scheduler_keeps_a_failing_callback_on_its_schedule():
    clock = ManualClock(0)
    calls = []

    def boom():
        calls.append(clock.now())
        raise ValueError("no")

    scheduler = Scheduler(clock)
    scheduler.add(Schedule("boom", boom, every(5)))
    scheduler.start()
    for _ in range(3):
        clock.advance(5)
        assert await scheduler.run_due(is_leader=True) == 1
    assert calls == [5, 10, 15] and scheduler.failures == 3
    strict = Scheduler(clock, fail_on_error=True)
    strict.add(Schedule("boom", boom, every(5)))
    strict.start()
    clock.advance(5)
    with pytest.raises(TimerError, match="'boom' failed: ValueError: no"):
        await strict.run_due(is_leader=True)
