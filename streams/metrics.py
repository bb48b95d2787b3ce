"""Plain counters, kept per task and summed per worker."""

from __future__ import annotations

from collections import Counter


class Metrics:
    def __init__(self) -> None:
        self.counters: Counter[str] = Counter()

    def incr(self, name: str, amount: int = 1) -> None:
        self.counters[name] += amount

    def get(self, name: str) -> int:
        return self.counters[name]

    def merge(self, other: Metrics) -> None:
        self.counters.update(other.counters)
