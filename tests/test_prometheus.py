"""A real Prometheus server scrapes a worker on the real broker, and its HTTP API shows the series and labels."""

from __future__ import annotations

import asyncio
import time

from streams import App
from tests.conftest import create_topics, unique_name
from tests.kafka_helpers import FAST_GROUP, produce, running, wait_for
from tests.prometheus_server import prometheus, query


async def wait_for_series(base: str, promql: str, check, timeout: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        result = await query(base, promql)
        if result and check(result):
            return result
        assert time.monotonic() < deadline, f"{promql}: {result}"
        await asyncio.sleep(0.5)


def labels_of(result: list[dict]) -> list[dict]:
    return [r["metric"] for r in result]


async def test_prometheus_scrapes_the_worker(brokers, tmp_path):
    src, out = unique_name("orders"), unique_name("out")
    await create_topics(brokers, {src: 2, out: 2})
    app = App(unique_name("prom"), brokers=brokers, state_dir=tmp_path / "state", commit_interval=0.3,
              consumer_config=FAST_GROUP, web_port=0)
    orders = app.stream(src)
    orders.map_values(lambda v: 100 // v["n"]).to(out)  # n == 0 fails: a dead letter, counted per node
    orders.group_by_key().count(name="counts")
    await produce(brokers, src, [(f"k{i % 5}", {"n": i % 10}) for i in range(200)])
    async with running(app) as worker:
        await wait_for(lambda: worker.metrics.get("records_processed") == 200, timeout=60)
        async with prometheus([worker.endpoint], tmp_path / "prometheus") as base:
            ident = {"app_id": app.app_id, "worker": worker.name, "job": "streams", "instance": worker.endpoint}
            up = await wait_for_series(base, "up", lambda r: r[0]["value"][1] == "1")
            assert labels_of(up) == [{"__name__": "up", "instance": worker.endpoint, "job": "streams"}]

            processed = await wait_for_series(base, "streams_records_processed_total",
                                              lambda r: sum(float(x["value"][1]) for x in r) == 200)
            assert sorted(labels_of(processed), key=lambda m: m["task"]) == [
                {"__name__": "streams_records_processed_total", **ident, "task": f"0_{p}", "topic": src}
                for p in range(2)]
            consumed = await query(base, "sum(streams_records_consumed_total)")
            assert float(consumed[0]["value"][1]) == 200
            produced = await query(base, "sum by (topic) (streams_records_produced_total)")
            by_topic = {r["metric"]["topic"]: float(r["value"][1]) for r in produced}
            assert by_topic[out] == 180 and by_topic[f"{app.app_id}-dlq"] == 20
            assert by_topic[f"{app.app_id}-counts-changelog"] >= 5

            dlq = await query(base, "streams_dlq_records_total")
            assert {r["metric"]["node"] for r in dlq} == {worker.topology.subtopologies[0].nodes[1].name}
            assert sum(float(r["value"][1]) for r in dlq) == 20

            # everything is processed and committed: lag 0 on both partitions, once the end offsets are looked up
            lag = await wait_for_series(base, "streams_consumer_lag_records",
                                        lambda r: len(r) == 2 and all(float(x["value"][1]) == 0 for x in r))
            assert {(m["topic"], m["partition"]) for m in labels_of(lag)} == {(src, "0"), (src, "1")}

            for name in ("streams_commit_latency_seconds_count", "streams_rebalance_latency_seconds_count",
                         "streams_process_latency_seconds_count", "streams_store_sst_bytes",
                         "streams_store_estimated_keys", "streams_records_restored_total", "streams_node_records_total",
                         "streams_restore_remaining_records", "streams_ready", "streams_tasks"):
                result = await query(base, name)
                assert result, f"{name} did not arrive"
            commits = await query(base, "streams_commit_latency_seconds{quantile='0.99'}")
            assert float(commits[0]["value"][1]) > 0
            assert float((await query(base, "streams_rebalance_latency_seconds_count"))[0]["value"][1]) >= 1
            stores = await query(base, "streams_store_estimated_keys")
            assert {(m["task"], m["store"]) for m in labels_of(stores)} == {("0_0", "counts"), ("0_1", "counts")}
