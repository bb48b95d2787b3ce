"""Records stamped far in the future, and late records: bad input goes to the DLQ, late drops are logged and counted.

One record stamped 9999-12-31 used to move stream time there, after which every
good record was late and silently dropped.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import pytest

from streams import App
from streams.config import StreamsConfig
from streams.processors.late import LateDrops
from streams.testing import TestDriver
from streams.windows import Tumbling, WindowedJsonSerde
from tests.conftest import create_topics, unique_name
from tests.kafka_helpers import FAST_GROUP, produce, read_topic, running, wait_for

END_OF_TIME = 253402214400000  # 9999-12-31T00:00:00Z
W = WindowedJsonSerde("str")


def counting_app(**settings) -> App:
    app = App("future", brokers="memory://unused", **settings)
    app.stream("in").group_by_key().window(Tumbling(10_000, grace=1_000)).count(name="counts").to("out")
    return app


def counts(driver: TestDriver) -> list[tuple]:
    return [(r.key.key, r.key.start, r.value) for r in driver.read_output("out", key_serde=W)]


def test_a_far_future_record_goes_to_the_dlq_and_moves_no_stream_time():
    now = int(time.time() * 1000) // 10_000 * 10_000
    with TestDriver(counting_app()) as driver:
        driver.pipe_input("in", "a", 1, timestamp=now)
        driver.pipe_input("in", "a", 1, timestamp=END_OF_TIME)
        driver.pipe_input("in", "a", 1, timestamp=now + 1_000)
        driver.pipe_input("in", "b", 1, timestamp=now + 2_000)
        assert counts(driver) == [("a", now, 1), ("a", now, 2), ("b", now, 1)]
        [dead] = driver.read_output("future-dlq", value_serde="bytes")
        headers = dict(dead.headers)
        assert headers["streams.error.type"] == b"FutureTimestampError"
        assert headers["streams.error.offset"] == b"1" and dead.timestamp == END_OF_TIME
        task = driver.tasks["0_0"]
        assert task.metrics.get("late_records") == 0 and task.metrics.get("dlq_records") == 1
        assert task.stream_time == now + 2_000


def test_the_skew_is_a_setting_and_applies_to_extracted_timestamps():
    now = int(time.time() * 1000) // 10_000 * 10_000
    app = App("future", brokers="memory://unused", max_future_skew=timedelta(minutes=1))
    app.stream("in", timestamp_extractor=lambda k, v, raw: v["at"]).group_by_key().window(
        Tumbling(10_000, grace=1_000)).count(name="counts").to("out")
    with TestDriver(app) as driver:
        driver.pipe_input("in", "a", {"at": now + 120_000}, timestamp=now)  # two minutes ahead: too far
        driver.pipe_input("in", "a", {"at": now + 30_000}, timestamp=now)  # half a minute ahead: fine
        driver.pipe_input("in", "a", {"at": now + 1_000}, timestamp=now)  # within grace of nothing: late
        assert counts(driver) == [("a", now + 30_000, 1)]
        assert [dict(r.headers)["streams.error.type"] for r in driver.read_output("future-dlq", value_serde="bytes")
                ] == [b"FutureTimestampError"]
        assert driver.tasks["0_0"].metrics.get("late_records") == 1


def test_table_rows_are_not_checked():
    app = App("future", brokers="memory://unused")
    app.table("rows", name="rows")
    with TestDriver(app) as driver:
        driver.pipe_input("rows", "k", {"v": 1}, timestamp=END_OF_TIME)
        assert driver.store("rows").get("k") == {"v": 1}
        assert driver.read_output("future-dlq") == []


def test_max_future_skew_is_validated_and_read_from_the_environment():
    assert StreamsConfig("a").max_future_skew == 86_400
    assert StreamsConfig("a", max_future_skew=timedelta(hours=2)).max_future_skew == 7_200
    assert StreamsConfig.build("a", {}, {"STREAMS_MAX_FUTURE_SKEW": "60"}).max_future_skew == 60
    for bad in (0, -1, "soon", float("inf"), float("nan")):
        with pytest.raises(ValueError, match="^max_future_skew: "):
            StreamsConfig("a", max_future_skew=bad)
    with pytest.raises(ValueError, match="^max_future_skew: STREAMS_MAX_FUTURE_SKEW='a day'"):
        StreamsConfig.build("a", {}, {"STREAMS_MAX_FUTURE_SKEW": "a day"})


def test_late_drops_are_logged_at_warning_at_most_once_per_interval(caplog):
    base = int(time.time() * 1000) // 10_000 * 10_000
    with TestDriver(counting_app()) as driver, caplog.at_level(logging.WARNING, "streams.processors.late"):
        driver.pipe_input("in", "a", 1, timestamp=base + 60_000)
        for i in range(50):
            driver.pipe_input("in", "a", 1, timestamp=base + i)
        assert driver.tasks["0_0"].metrics.get("late_records") == 50
    [line] = caplog.records
    assert line.levelno == logging.WARNING
    assert "task 0_0" in line.getMessage() and "dropped 1 late record(s)" in line.getMessage()


class FakeContext:
    task_id = "1_3"

    def __init__(self) -> None:
        from streams.metrics import Metrics

        self.metrics = Metrics()


def test_the_late_drop_report_counts_the_drops_since_the_previous_one(caplog):
    now = [0.0]
    late = LateDrops("WINDOW-COUNT", clock=lambda: now[0], interval_s=10)
    context = FakeContext()
    with caplog.at_level(logging.WARNING, "streams.processors.late"):
        for _ in range(25):  # one drop per second
            late.dropped(context, 100, 5_000, 1_000)
            now[0] += 1
    assert [r.getMessage().split(" dropped ")[1].split(" late")[0] for r in caplog.records] == ["1", "10", "10"]
    assert context.metrics.get("late_records") == 25 and late.unreported == 4


async def test_on_the_broker_a_far_future_event_time_is_dead_lettered_and_counted_per_task(brokers, tmp_path):
    """Kafka 4 refuses records stamped an hour ahead, so far-future times reach the worker through payloads."""
    src, out = unique_name("in"), unique_name("out")
    await create_topics(brokers, {src: 2, out: 1})
    app = App(unique_name("future"), brokers=brokers, state_dir=tmp_path, commit_interval=0.2,
              consumer_config=FAST_GROUP)
    app.stream(src, timestamp_extractor=lambda k, v, raw: v["at"]).group_by_key().window(
        Tumbling(10_000, grace=1_000)).count(name="counts").to(out)
    now = int(time.time() * 1000) // 10_000 * 10_000 - 60_000
    good = [(f"u{i % 3}", {"at": now + i * 100}) for i in range(30)]
    await produce(brokers, src, [("u0", {"at": now}), ("u0", {"at": END_OF_TIME}), *good[1:]], partition=0)
    await produce(brokers, src, [("u1", {"at": now - 100_000})], partition=1)  # late on arrival? no: first there
    async with running(app) as worker:
        got = await read_topic(brokers, out, expected=31)
        dead = await read_topic(brokers, app.config.dlq_topic, expected=1)
        await wait_for(lambda: worker.metrics.get("records_processed") >= 32)
        task_dlq = {task_id: task.metrics.get("dlq_records") for task_id, task in worker.tasks.items()}
        late = worker.metrics.get("late_records")
    assert len(got) == 31 and late == 0
    assert dict(dead[0].headers)["streams.error.type"] == b"FutureTimestampError"
    assert task_dlq == {"0_0": 1, "0_1": 0} and worker.metrics.get("dlq_records") == 1


@pytest.mark.parametrize("dlq_exists", [False, True])
async def test_on_the_broker_a_far_future_record_timestamp_reaches_the_dlq(brokers, tmp_path, dlq_exists):
    """An input topic that takes any timestamp: the DLQ must take the dead letter too, or every commit fails."""
    src, out = unique_name("in"), unique_name("out")
    await create_topics(brokers, {src: 1}, {"message.timestamp.after.max.ms": str((1 << 63) - 1)})
    await create_topics(brokers, {out: 1})
    app = App(unique_name("future"), brokers=brokers, state_dir=tmp_path, commit_interval=0.2,
              consumer_config=FAST_GROUP)
    if dlq_exists:  # made earlier, with Kafka 4's default: an hour ahead at most
        await create_topics(brokers, {app.config.dlq_topic: 1})
    app.stream(src).map_values(lambda v: v + 1).to(out)
    now = int(time.time() * 1000)
    await produce(brokers, src, [("a", 1, now), ("b", 2, END_OF_TIME), ("c", 3, now + 1)])
    async with running(app) as worker:
        got = await read_topic(brokers, out, expected=2)
        [dead] = await read_topic(brokers, app.config.dlq_topic, expected=1)
        await wait_for(lambda: worker.metrics.get("records_processed") == 3)
    assert [(r.key, r.value) for r in got] == [(b"a", b"2"), (b"c", b"4")]
    headers = dict(dead.headers)
    assert dead.key == b"b" and headers["streams.error.type"] == b"FutureTimestampError"
    if dlq_exists:
        assert headers["streams.error.timestamp"] == str(END_OF_TIME).encode()
        assert abs(dead.timestamp - time.time() * 1000) < 600_000
    else:
        assert dead.timestamp == END_OF_TIME and "streams.error.timestamp" not in headers


async def test_on_the_broker_an_input_two_hours_ahead_is_dead_lettered_when_the_output_refuses_it(brokers, tmp_path):
    """Kafka 4 refuses records stamped over an hour ahead: within max_future_skew (a day), such an input's
    output would fail every commit, so the worker narrows the skew to what its output topics take."""
    src, out = unique_name("in"), unique_name("out")
    await create_topics(brokers, {src: 1}, {"message.timestamp.after.max.ms": str((1 << 63) - 1)})
    await create_topics(brokers, {out: 1})  # the broker's default: an hour ahead at most
    app = App(unique_name("future"), brokers=brokers, state_dir=tmp_path, commit_interval=0.2,
              consumer_config=FAST_GROUP)
    app.stream(src).group_by(lambda k, v: k).count(name="counts").to_stream().to(out)  # a repartition, a changelog
    now = int(time.time() * 1000)
    await produce(brokers, src, [("a", 1, now), ("b", 2, now + 2 * 3_600_000), ("a", 3, now + 1_000),
                                 ("c", 4, now + 30 * 60_000)])
    async with running(app) as worker:
        got = await read_topic(brokers, out, expected=3)
        [dead] = await read_topic(brokers, app.config.dlq_topic, expected=1)
        await wait_for(lambda: worker.metrics.get("records_processed") >= 4)
        assert worker.future_skew_ms == 3_600_000 - 60_000
    assert [(r.key, r.value) for r in got] == [(b"a", b"1"), (b"a", b"2"), (b"c", b"1")]
    assert dead.key == b"b" and dict(dead.headers)["streams.error.type"] == b"FutureTimestampError"
