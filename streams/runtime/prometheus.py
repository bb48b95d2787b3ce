"""A worker's metrics in the Prometheus text format, read from the worker when scraped.

The collector holds no state of its own: every scrape reads the worker's
counters (streams/metrics.py), its commit, rebalance and restore figures, its
lag samples and its stores' sizes, and turns them into metric families.
docs/operations.md lists every name with the Kafka Streams metric it follows.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from streams.metrics import LatencySamples

if TYPE_CHECKING:
    from streams.runtime.worker import Worker

QUANTILES = (0.5, 0.99)

COUNTERS: dict[str, tuple[str, str, str]] = {
    # counter in Metrics: (Prometheus name, what its label is, help)
    "records_consumed": ("streams_records_consumed", "topic", "Records polled from the topic for the task."),
    "records_processed": ("streams_records_processed", "topic",
                          "Records of the topic that went through the task's topology."),
    "records_produced": ("streams_records_produced", "topic",
                         "Records the task queued for the topic: outputs, changelog and dead letters."),
    "records_restored": ("streams_records_restored", "store", "Changelog records restored into the store."),
    "late_records": ("streams_late_records", "node", "Records dropped by the node because their window had closed."),
    "dlq_records": ("streams_dlq_records", "node", "Records that failed in the node and went to the dead letters."),
    "skipped_records": ("streams_skipped_records", "node", "Records that failed in the node and were skipped."),
    "dropped_null_records": ("streams_dropped_null_records", "node",
                             "Records with a null key or value that the node dropped."),
    "expired_windows": ("streams_expired_windows", "node", "Windows deleted from the node's store after retention."),
    "idle_closes": ("streams_idle_closes", "node", "Windows the node closed on wall-clock time for an idle partition."),
    "stale_join_responses": ("streams_stale_join_responses", "node",
                             "Foreign-key join responses dropped: the left row changed after the request."),
    "suppress_early_emits": ("streams_suppress_early_emits", "node",
                             "Times the suppression emitted early because its buffer was full."),
    "wall_clock_unmatched": ("streams_wall_clock_unmatched", "node",
                             "Unmatched join results emitted on wall-clock time for a quiet partition."),
}


class WorkerCollector(Collector):
    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def collect(self) -> Iterator[Metric]:
        worker = self.worker
        base = {"app_id": worker.config.app_id, "worker": worker.name}
        yield from self._counters(base)
        latency = summary("streams_process_latency_seconds",
                          "Seconds per processed record: sum/count is the mean; quantiles of recent batches' means.")
        for task_id, samples in sorted(worker.metrics.process_latency.items()):
            add_summary(latency, {**base, "task": task_id}, samples)
        yield latency
        yield from self._commits_and_rebalances(base)
        yield from self._restores(base)
        yield from self._lag(base)
        yield from self._nodes_and_stores(base)
        tasks = GaugeMetricFamily("streams_tasks", "Tasks this worker runs, active or standby.",
                                  labels=[*base, "kind"])
        tasks.add_metric([*base.values(), "active"], len(worker.tasks))
        tasks.add_metric([*base.values(), "standby"], len(worker.standbys.stores) if worker.standbys else 0)
        yield tasks
        ready = GaugeMetricFamily("streams_ready", "1 when every assigned task is restored and running.",
                                  labels=list(base))
        ready.add_metric(list(base.values()), 1 if worker.ready else 0)
        yield ready

    def _counters(self, base: dict[str, str]) -> Iterator[Metric]:
        families: dict[str, CounterMetricFamily] = {}
        for (name, task, label), value in sorted(self.worker.metrics.counters.items()):
            known = COUNTERS.get(name)
            if known is None:
                continue
            prom, label_name, doc = known
            family = families.get(name)
            if family is None:
                family = families[name] = CounterMetricFamily(prom, doc, labels=[*base, "task", label_name])
            family.add_metric([*base.values(), task, label], value)
        yield from families.values()

    def _commits_and_rebalances(self, base: dict[str, str]) -> Iterator[Metric]:
        worker = self.worker
        stats = worker.commit_stats
        commits = summary("streams_commit_latency_seconds",
                          "Seconds per commit of all the worker's tasks; _count is the number of commits.")
        commits.add_sample("streams_commit_latency_seconds_count", base, stats.commits)
        commits.add_sample("streams_commit_latency_seconds_sum", base, stats.total_latency_ms / 1000)
        for q in QUANTILES:
            commits.add_sample("streams_commit_latency_seconds", {**base, "quantile": str(q)},
                               stats.percentile(q) / 1000)
        yield commits
        rebalance = summary("streams_rebalance_latency_seconds",
                            "Seconds from a rebalance's start (revocation, or the first join) until this worker's "
                            "tasks were restored; _count is the number of rebalances.")
        add_summary(rebalance, base, worker.rebalances.samples)
        yield rebalance
        running = GaugeMetricFamily("streams_rebalance_in_progress", "1 while the worker is in a rebalance.",
                                    labels=list(base))
        running.add_metric(list(base.values()), 1 if worker.rebalances.running else 0)
        yield running

    def _restores(self, base: dict[str, str]) -> Iterator[Metric]:
        labels = [*base, "task", "store"]
        remaining = GaugeMetricFamily("streams_restore_remaining_records",
                                      "Changelog offsets the store's latest restore still has to read.", labels=labels)
        rate = GaugeMetricFamily("streams_restore_rate_records_per_second",
                                 "Records per second of the store's latest restore.", labels=labels)
        for (task_id, store), progress in sorted(self.worker.restoring.items()):
            values = [*base.values(), task_id, store]
            remaining.add_metric(values, progress.remaining)
            rate.add_metric(values, progress.rate)
        yield remaining
        yield rate

    def _lag(self, base: dict[str, str]) -> Iterator[Metric]:
        worker = self.worker
        labels = [*base, "topic", "partition"]
        lag = GaugeMetricFamily("streams_consumer_lag_records",
                                "Records between the committed offset and the end of the input partition.",
                                labels=labels)
        committed = GaugeMetricFamily("streams_consumer_committed_offset",
                                      "The next offset to process, as last committed.", labels=labels)
        end = GaugeMetricFamily("streams_consumer_end_offset", "The input partition's end offset, as last looked up.",
                                labels=labels)
        for tp in sorted(worker.committed_offsets):
            values = [*base.values(), tp.topic, str(tp.partition)]
            offset = worker.committed_offsets[tp]
            committed.add_metric(values, offset)
            if tp in worker.end_offsets:
                end.add_metric(values, worker.end_offsets[tp])
                lag.add_metric(values, max(0, worker.end_offsets[tp] - offset))
        yield lag
        yield committed
        yield end
        standby = GaugeMetricFamily("streams_standby_lag_records",
                                    "Changelog records the standby store has not applied yet.",
                                    labels=[*base, "task", "store"])
        for task_id, stores in sorted(worker.standbys.stores.items() if worker.standbys else ()):
            for name in sorted(stores):
                behind = worker.standby_lag(task_id, name)
                if behind is not None:
                    standby.add_metric([*base.values(), task_id, name], behind)
        yield standby

    def _nodes_and_stores(self, base: dict[str, str]) -> Iterator[Metric]:
        worker = self.worker
        nodes = CounterMetricFamily("streams_node_records", "Records handed to the processor node.",
                                    labels=[*base, "task", "node"])
        labels = [*base, "task", "store"]
        sst = GaugeMetricFamily("streams_store_sst_bytes", "Bytes of the RocksDB store's SST files.", labels=labels)
        memtable = GaugeMetricFamily("streams_store_memtable_bytes", "Bytes of the RocksDB store's memtables.",
                                     labels=labels)
        keys = GaugeMetricFamily("streams_store_estimated_keys", "RocksDB's estimate of the store's keys.",
                                 labels=labels)
        hits = CounterMetricFamily("streams_cache_hits", "Store reads answered by the write cache (debug level).",
                                   labels=labels)
        misses = CounterMetricFamily("streams_cache_misses", "Store reads that went past the write cache to the "
                                     "store (debug level).", labels=labels)
        ratio = GaugeMetricFamily("streams_cache_hit_ratio", "Share of the store's reads answered by the write cache "
                                  "since the task opened (debug level).", labels=labels)
        for task_id, task in sorted(worker.tasks.items()):
            for processor in task.processors:
                for name, count in processor.node_counts():
                    nodes.add_metric([*base.values(), task_id, name], count)
            for name, store in sorted(task.stores.items()):
                values = [*base.values(), task_id, name]
                size_bytes = getattr(getattr(store, "local", None), "size_bytes", None)
                if size_bytes is not None:
                    sizes = size_bytes()
                    sst.add_metric(values, sizes["sst"])
                    memtable.add_metric(values, sizes["memtable"])
                    keys.add_metric(values, store.local.approximate_count())
                cache = getattr(store, "cache", None)
                if hasattr(cache, "hits"):
                    hits.add_metric(values, cache.hits)
                    misses.add_metric(values, cache.misses)
                    reads = cache.hits + cache.misses
                    ratio.add_metric(values, cache.hits / reads if reads else 0.0)
        yield from (nodes, sst, memtable, keys, hits, misses, ratio)


def summary(name: str, doc: str) -> Metric:
    return Metric(name, doc, "summary")


def add_summary(metric: Metric, labels: dict[str, str], samples: LatencySamples) -> None:
    metric.add_sample(metric.name + "_count", labels, samples.count)
    metric.add_sample(metric.name + "_sum", labels, samples.total)
    for q in QUANTILES:
        metric.add_sample(metric.name, {**labels, "quantile": str(q)}, samples.quantile(q))


def registry_for(worker: Worker) -> CollectorRegistry:
    """A registry of this worker alone (not prometheus_client's global one, which would mix workers)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(WorkerCollector(worker))
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
