"""Plain counters, kept per task and summed per worker.

A task's Metrics has the worker's as its parent: every count lands in both, so
the worker's totals outlive the tasks that a rebalance closes.
"""

from __future__ import annotations

from collections import Counter


class Metrics:
    def __init__(self, parent: Metrics | None = None) -> None:
        self.counters: Counter[str] = Counter()
        self.parent = parent

    def incr(self, name: str, amount: int = 1) -> None:
        self.counters[name] += amount
        if self.parent is not None:
            self.parent.incr(name, amount)

    def get(self, name: str) -> int:
        return self.counters[name]
