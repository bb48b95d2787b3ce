"""The record cache of table outputs: the last update per key reaches downstream at each commit."""

from __future__ import annotations

import pytest

from streams import App
from streams.compiler.compile import plan_tasks
from streams.config import StreamsConfig
from streams.processors.record_cache import CacheBudget
from streams.runtime.stores import TaskStore
from streams.task.errors_policy import ErrorPolicy
from streams.task.task import Task
from streams.testing import TestDriver
from streams.transport.base import RawRecord, TopicPartition
from tests.conftest import create_topics, unique_name
from tests.kafka_helpers import FAST_GROUP, decoded, produce, read_topic, running, wait_for

CLICKS = [("c1", {"user": "ann"}), ("c2", {"user": "bob"}), ("c3", {"user": "ann"}),
          ("c4", {"user": "cy"}), ("c5", {"user": "ann"}), ("c6", {"user": "bob"})]


def pipe_in_one_commit(driver: TestDriver, records: list) -> None:
    with driver.batch():  # one poll and one commit interval
        for key, value in records:
            driver.pipe_input("clicks", key, value)


def count_app(**settings) -> App:
    app = App("cache-app", brokers="memory://", **settings)
    app.stream("clicks").group_by(lambda k, v: v["user"], name="by-user").count(name="counts") \
        .to_stream().to("counts-out")
    return app


def test_one_commit_interval_sends_the_last_update_per_key_in_first_update_order():
    with TestDriver(count_app(cache_max_bytes=10 * 1024 * 1024)) as driver:
        pipe_in_one_commit(driver, CLICKS)
        assert driver.read_key_values("counts-out") == [("ann", 3), ("bob", 2), ("cy", 1)]
        assert dict(driver.store("counts").items()) == {"ann": 3, "bob": 2, "cy": 1}
        pipe_in_one_commit(driver, [("c7", {"user": "cy"})])
        assert driver.read_key_values("counts-out") == [("cy", 2)]


def test_cache_max_bytes_zero_emits_every_update():
    with TestDriver(count_app(cache_max_bytes=0)) as driver:
        pipe_in_one_commit(driver, CLICKS)
        assert driver.read_key_values("counts-out") == [("ann", 1), ("bob", 1), ("ann", 2), ("cy", 1),
                                                         ("ann", 3), ("bob", 2)]


def test_each_pipe_input_is_a_commit_point():
    with TestDriver(count_app(cache_max_bytes=10 * 1024 * 1024)) as driver:
        for key, value in CLICKS[:3]:
            driver.pipe_input("clicks", key, value)
        assert driver.read_key_values("counts-out") == [("ann", 1), ("bob", 1), ("ann", 2)]


@pytest.mark.parametrize("max_bytes,before_commit", [(10 * 1024 * 1024, []), (1, [("ann", 2), ("bob", 1)])])
def test_a_cache_over_its_budget_forwards_before_the_commit(max_bytes, before_commit):
    app = App("cache-budget", brokers="memory://")
    app.stream("clicks").group_by_key().count(name="counts").to_stream().to("counts-out")
    plan = plan_tasks(app.topology(), {"clicks": 1})
    counts = {**plan.partition_counts, "counts-out": 1, app.config.dlq_topic: 1}
    spec = app.topology().stores["counts"]
    task = Task(plan.tasks["0_0"], app.app_id, counts, ErrorPolicy("dlq", app.config.dlq_topic),
                stores={"counts": TaskStore(spec, 0, None)}, cache_budget=CacheBudget(max_bytes))
    tp = TopicPartition("clicks", 0)
    task.process({tp: [RawRecord("clicks", 0, i, 0, key, b"{}", ()) for i, key in enumerate([b"ann", b"bob", b"ann"])]})

    def written() -> list:
        return [(r.key.decode(), int(r.value)) for r in task.take_output()]

    assert written() == before_commit  # 1 byte: the batch's updates, deduplicated, at once
    task.flush_caches()
    assert written() == ([] if before_commit else [("ann", 2), ("bob", 1)])
    task.close()


def test_cached_updates_feed_a_downstream_aggregation_at_the_commit():
    app = App("cache-chain", brokers="memory://", cache_max_bytes=10 * 1024 * 1024)
    per_user = app.stream("clicks").group_by(lambda k, v: v["user"], name="by-user").count(name="counts")
    # how many users have each count: a table of a table, through a second repartition
    per_user.to_stream().group_by(lambda user, n: str(n), name="by-n").count(name="histogram") \
        .to_stream().to("histogram-out")
    with TestDriver(app) as driver:
        pipe_in_one_commit(driver, CLICKS)
        assert dict(driver.read_key_values("histogram-out")) == {"1": 1, "3": 1, "2": 1}


def test_malformed_input_still_goes_to_the_dlq_alone():
    with TestDriver(count_app(cache_max_bytes=10 * 1024 * 1024)) as driver:
        driver.pipe_raw("clicks", b"c0", b"{not json")
        pipe_in_one_commit(driver, CLICKS[:2])
        assert len(driver.read_output("cache-app-dlq", value_serde="bytes")) == 1
        assert driver.read_key_values("counts-out") == [("ann", 1), ("bob", 1)]


def test_setting_is_validated_and_read_from_the_environment():
    assert StreamsConfig("a").cache_max_bytes == 0  # off unless an app sets a budget
    assert StreamsConfig.build("a", {}, {"STREAMS_CACHE_MAX_BYTES": "0"}).cache_max_bytes == 0
    for bad in (-1, 1.5, True, "10"):
        with pytest.raises(ValueError, match="^cache_max_bytes: "):
            StreamsConfig("a", cache_max_bytes=bad)
    with pytest.raises(ValueError, match="^cache_max_bytes: STREAMS_CACHE_MAX_BYTES"):
        StreamsConfig.build("a", {}, {"STREAMS_CACHE_MAX_BYTES": "lots"})


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
@pytest.mark.parametrize("cache_max_bytes", [0, 10 * 1024 * 1024])
async def test_on_the_broker_the_commit_sends_the_last_update_per_key(brokers, tmp_path, guarantee, cache_max_bytes):
    src, out = unique_name("clicks"), unique_name("counts")
    await create_topics(brokers, {src: 1, out: 1})
    clicks = [(f"u{i % 3}", {"click": i}) for i in range(60)]  # keyed by user: no repartition
    await produce(brokers, src, clicks)
    # One commit interval covers the whole run: only the commit at shutdown flushes the cache.
    app = App(unique_name("cache"), brokers=brokers, state_dir=tmp_path, commit_interval=600,
              processing_guarantee=guarantee, cache_max_bytes=cache_max_bytes, consumer_config=FAST_GROUP)
    app.stream(src).group_by_key().count(name="counts").to_stream().to(out)
    async with running(app) as worker:
        await wait_for(lambda: worker.metrics.get("records_processed") >= 60, timeout=30)
    written = decoded(await read_topic(brokers, out, expected=None, timeout=15, isolation_level="read_committed"))
    finals = {"u0": 20, "u1": 20, "u2": 20}
    if cache_max_bytes:
        assert sorted(written) == sorted(finals.items())
    else:
        assert len(written) == 60
        assert {key: value for key, value in written} == finals
