"""A worker's counters and latency samples: plain numbers, added to once per batch, read when scraped.

Tasks, processors and the worker add to them on the hot path, once per poll,
batch or sink call and never once per record; exporters (Prometheus, the
topology page) read them on demand, so a worker nobody scrapes pays for the
additions only.  docs/operations.md names every metric.

Recording levels, as in Kafka Streams: "info" (the default) records everything
that costs a few additions per batch; "debug" adds what costs something per
record (the write cache's hit counts); "off" keeps only the processed-record and
per-node counts that the framework itself reads, and drops the consumed and
produced counts and the latency timing.
"""

from __future__ import annotations

import time
from collections import Counter, deque

CounterKey = tuple[str, str, str]
"""(metric name, task id or "", label): the label is a topic, a node or a store, as the metric says."""

RECENT_SAMPLES = 1024


class LatencySamples:
    """Durations in seconds: the total and count of everything observed, and the latest ones for quantiles.

    An observation may stand for several items (a batch of records): `count` and
    `total` then count items, and the sample kept for quantiles is the batch's
    time per item.
    """

    def __init__(self) -> None:
        self.observations = 0
        self.count = 0
        self.total = 0.0
        self.recent: deque[float] = deque(maxlen=RECENT_SAMPLES)

    def observe(self, seconds: float, items: int = 1) -> None:
        self.observations += 1
        self.count += items
        self.total += seconds
        self.recent.append(seconds / items if items > 0 else seconds)

    def quantile(self, q: float) -> float:
        """The q-quantile of the latest samples (0.0 when none)."""
        if not self.recent:
            return 0.0
        ordered = sorted(self.recent)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Metrics:
    """The counters of one worker (or of one TestDriver), shared by all its tasks."""

    def __init__(self, level: str = "info") -> None:
        self.level = level
        self.recording = level != "off"
        self.debug = level == "debug"
        self.counters: Counter[CounterKey] = Counter()
        self.process_latency: dict[str, LatencySamples] = {}

    def incr(self, name: str, amount: int = 1, task: str = "", label: str = "") -> None:
        self.counters[(name, task, label)] += amount

    def get(self, name: str, task: str | None = None, label: str | None = None) -> int:
        """The sum of a counter over every task and label, or over the ones given."""
        return sum(value for (n, t, lbl), value in self.counters.items()
                   if n == name and (task is None or t == task) and (label is None or lbl == label))

    def totals(self) -> Counter[str]:
        """Every counter summed over its tasks and labels, by name."""
        totals: Counter[str] = Counter()
        for (name, _, _), value in self.counters.items():
            totals[name] += value
        return totals

    def for_task(self, task_id: str) -> TaskMetrics:
        return TaskMetrics(self, task_id)


class TaskMetrics:
    """A task's handle on its worker's Metrics: the same counters, with the task id filled in."""

    __slots__ = ("worker", "task_id", "counters", "recording", "latency")

    def __init__(self, worker: Metrics, task_id: str) -> None:
        self.worker = worker
        self.task_id = task_id
        self.counters = worker.counters
        self.recording = worker.recording
        self.latency = worker.process_latency.setdefault(task_id, LatencySamples())

    def incr(self, name: str, amount: int = 1, label: str = "") -> None:
        self.counters[(name, self.task_id, label)] += amount

    def get(self, name: str, label: str | None = None) -> int:
        return self.worker.get(name, self.task_id, label)


class Stopwatch:
    """Start and stop times of something that happens now and then (a rebalance), kept as samples."""

    def __init__(self) -> None:
        self.samples = LatencySamples()
        self.started: float | None = None

    def start(self) -> None:
        if self.started is None:
            self.started = time.monotonic()

    def stop(self) -> None:
        if self.started is not None:
            self.samples.observe(time.monotonic() - self.started)
            self.started = None

    @property
    def running(self) -> bool:
        return self.started is not None
