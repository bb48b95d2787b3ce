"""Metrics: what tasks count per batch, the recording levels, and the Prometheus exposition of a worker."""

from __future__ import annotations

import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streams import App, TestDriver
from streams.metrics import LatencySamples, Metrics
from streams.partitioner import partition_for
from streams.runtime.prometheus import exposition, registry_for
from streams.state.cache import CountingCachedStore
from streams.state.memory import InMemoryStore
from streams.transport import OutRecord, TopicSpec
from streams.transport.embedded import EmbeddedTransport, close_broker
from tests.kafka_helpers import running, wait_for


def pipeline(level: str = "info", on_error: str = "dlq") -> App:
    app = App("metrics", on_error=on_error, metrics_recording_level=level)
    s = app.stream("in")
    s.map_values(lambda v: 10 // v, name="divide").to("out")
    s.group_by_key().count(name="counts")
    return app


def test_tasks_count_per_topic_and_per_node():
    with TestDriver(pipeline()) as driver:
        for n in (1, 2, 0, 5):
            driver.pipe_input("in", "k", n)
        metrics = driver.tasks["0_0"].metrics
        assert metrics.get("records_processed", "in") == 4
        assert metrics.get("records_produced", "out") == 3
        assert metrics.get("records_produced", "metrics-dlq") == 1
        assert metrics.get("dlq_records", "divide") == 1 and metrics.get("dlq_records") == 1
        assert metrics.latency.count == 4 and metrics.latency.observations == 4 and metrics.latency.total > 0
        nodes = {p.name: p.records_in for p in driver.tasks["0_0"].processors}
        assert nodes["divide"] == 4 and sum(1 for n in nodes.values() if n == 4) >= 3


def test_skipped_records_are_counted_per_node():
    with TestDriver(pipeline(on_error="skip")) as driver:
        driver.pipe_input("in", "k", 0)
        assert driver.tasks["0_0"].metrics.get("skipped_records", "divide") == 1


def test_recording_off_keeps_only_what_the_framework_reads():
    with TestDriver(pipeline("off")) as driver:
        driver.pipe_input("in", "k", 1)
        metrics = driver.tasks["0_0"].metrics
        assert metrics.get("records_processed") == 1
        assert metrics.get("records_produced", "out") == 0 and metrics.latency.observations == 0


def test_latency_samples_and_worker_wide_sums():
    samples = LatencySamples()
    for ms in range(1, 101):
        samples.observe(ms / 1000 * 10, 10)  # ten items each: ms/1000 seconds per item
    assert samples.count == 1000 and samples.observations == 100
    assert samples.quantile(0.5) == pytest.approx(0.051) and samples.quantile(0.99) == pytest.approx(0.1)
    assert LatencySamples().quantile(0.5) == 0.0
    metrics = Metrics()
    metrics.for_task("0_0").incr("late_records", 2, "window-a")
    metrics.for_task("0_1").incr("late_records", 3, "window-b")
    assert metrics.get("late_records") == 5 and metrics.get("late_records", label="window-b") == 3
    assert metrics.totals() == {"late_records": 5}  # what app.running()'s run.metrics shows


def test_cache_hits_and_misses():
    store = CountingCachedStore(InMemoryStore("s"))
    store.store.put(b"old", b"1")
    store.put(b"new", b"2")
    assert store.get(b"new") == b"2" and store.get(b"old") == b"1" and store.get(b"none") is None
    assert (store.hits, store.misses) == (1, 2)


async def test_worker_exposition_names_labels_and_debug_cache_counts(tmp_path):
    url = f"memory://metrics-{uuid.uuid4().hex[:8]}"
    transport = EmbeddedTransport(url)
    admin = transport.admin()
    await admin.start()
    await admin.create_topics([TopicSpec("in", 2), TopicSpec("out", 2)])
    producer = transport.producer()
    await producer.start()
    await producer.send_many([OutRecord("in", partition_for(k, 2), k, b"%d" % n, None, ())
                              for n, k in enumerate([b"a", b"b", b"a", b"c", b"a"], start=1)])
    await producer.flush()
    app = pipeline("debug")
    app.configure(brokers=url, state_dir=tmp_path, commit_interval=0.1)
    try:
        async with running(app) as worker:
            await wait_for(lambda: worker.metrics.get("records_processed") == 5
                           and sum(worker.committed_offsets.values()) == 5)
            await worker.sample_offsets()
            families = {f.name: f for f in text_string_to_metric_families(exposition(registry_for(worker)).decode())}
    finally:
        await producer.stop()
        await admin.stop()
        close_broker(url)
    expected = {"streams_records_consumed", "streams_records_processed", "streams_records_produced",
                "streams_records_restored", "streams_process_latency_seconds", "streams_commit_latency_seconds",
                "streams_rebalance_latency_seconds", "streams_rebalance_in_progress",
                "streams_restore_remaining_records", "streams_restore_rate_records_per_second",
                "streams_consumer_lag_records", "streams_consumer_committed_offset", "streams_consumer_end_offset",
                "streams_standby_lag_records", "streams_node_records", "streams_store_sst_bytes",
                "streams_store_memtable_bytes", "streams_store_estimated_keys", "streams_cache_hits",
                "streams_cache_misses", "streams_cache_hit_ratio", "streams_tasks", "streams_ready"}
    assert expected <= set(families), expected - set(families)
    hits = {s.labels["task"]: s.value for s in families["streams_cache_hits"].samples}
    misses = {s.labels["task"]: s.value for s in families["streams_cache_misses"].samples}
    # "a" three times: its first read misses, the next two find the pending count; b and c miss once each
    assert sum(hits.values()) == 2 and sum(misses.values()) == 3
    lag = {(s.labels["topic"], s.labels["partition"]): s.value
           for s in families["streams_consumer_lag_records"].samples}
    assert lag == {("in", "0"): 0, ("in", "1"): 0}
    for sample in families["streams_records_processed"].samples:
        assert sample.labels["app_id"] == "metrics" and sample.labels["worker"] == worker.name
    sizes = families["streams_store_memtable_bytes"].samples
    assert {s.labels["store"] for s in sizes} == {"counts"} and all(s.value > 0 for s in sizes)
