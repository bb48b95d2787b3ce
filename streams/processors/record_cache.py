"""The record cache of table outputs: the last update per key, forwarded at the commit.

A table's downstream (an output topic, a join, another aggregation) needs the
table's newest value per key, not every step on the way.  Between commits an
aggregation keeps only its last update per key here; the commit (step 0 of
streams/runtime/commit.py) forwards them, so a hot key costs one output record
per commit interval instead of one per input record.  The caches of a worker
share one byte budget (the `cache_max_bytes` setting): a cache whose updates
take the worker over it forwards all its entries at once, early.
"""

from __future__ import annotations

from streams.record import Record

ENTRY_OVERHEAD = 120
"""Bytes an entry costs beyond its serialized key and value: the Record and its slot in the dict."""


class CacheBudget:
    """The bytes that the record caches of one worker (or one TestDriver) hold together."""

    __slots__ = ("max_bytes", "used")

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.used = 0

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0


class RecordCache:
    """One processor's pending updates by serialized key, in the order of each key's first update.

    The hot path writes `entries` directly and reports the bytes of the keys it added with
    grown(); an entry's size is taken when its key enters, which is what a cache of
    counts and sums needs (their values hardly change size), and costs one dict lookup.
    """

    __slots__ = ("budget", "entries", "_bytes")

    def __init__(self, budget: CacheBudget) -> None:
        self.budget = budget
        self.entries: dict[bytes, Record] = {}
        self._bytes = 0

    def grown(self, size: int) -> bool:
        """Count `size` more bytes; True when the worker's caches are now over their budget."""
        self._bytes += size
        budget = self.budget
        budget.used += size
        return budget.used > budget.max_bytes

    def take(self) -> list[Record]:
        """The pending updates, leaving the cache empty."""
        entries, self.entries = self.entries, {}
        self.budget.used -= self._bytes
        self._bytes = 0
        return list(entries.values())

    def __len__(self) -> int:
        return len(self.entries)
