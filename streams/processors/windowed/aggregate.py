"""Windowed aggregation: the shared processor loop, and time (tumbling and hopping) windows.

The base class owns what every window kind shares: the running stream time
(the largest timestamp seen, advanced per record and kept in the store so a
restarted task resumes from it), dropping and counting late records, final
emission through the store's time index, retention, and the idle close.  A
subclass only says how one record changes its windows (_apply).

Each record costs one aggregator call per window it lands in; a record whose
callback raises changes no window, because a subclass computes every new
aggregate before it writes any.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from streams.processors.api import Processor
from streams.record import Record
from streams.serdes import Serde
from streams.windows.definitions import Hopping, WindowDefinition, Windowed
from streams.windows.store import NO_TIME, WindowStore, key_prefix, pack_time, split_window_key, unpack_newest

log = logging.getLogger(__name__)

NOTHING_DUE = 1 << 62
"""The next due index time when no window is waiting for its final result."""

Merger = Callable[[Any, Any, Any], Any]


class WindowAggregate(Processor):
    """aggregate(initializer, aggregator) per key and window; emits updates, or final results only."""

    def __init__(self, name: str, store_name: str, window: WindowDefinition, initializer: Callable[[], Any],
                 aggregator: Callable[[Any, Any, Any], Any], key_serde: Serde, value_serde: Serde, *,
                 emit: str = "update", retention: int | None = None, idle_close: int | None = None,
                 merger: Merger | None = None) -> None:
        super().__init__(name)
        self.store_name = store_name
        self.window = window
        self.initializer = initializer
        self.aggregator = aggregator
        self.merger = merger
        self.key_serde = key_serde
        self.value_serde = value_serde
        self.final = emit == "final"
        self.retention = window.min_retention if retention is None else retention
        self.close_span = window.close_span
        self.idle_close = idle_close
        self.windows: WindowStore = None  # type: ignore[assignment]
        self.stream_time = NO_TIME
        self._next_due = NOTHING_DUE
        self._expired_to: int | None = None
        self._oldest: int | None = None  # no window is indexed below this time (None: not known yet)
        self._last_activity = 0

    def init(self, context: Any) -> None:
        super().init(context)
        self.windows = WindowStore(context.get_store(self.store_name))
        self.stream_time = self.windows.stream_time()
        if self.final:
            due = self.windows.first_indexed_after(self.stream_time - self.close_span)
            self._next_due = NOTHING_DUE if due is None else due
        self._last_activity = context.wall_clock_ms()

    # -- the loop

    def process(self, batch: list[Record]) -> None:
        out: list[Record] = []
        started = self.stream_time
        final, close_span, apply = self.final, self.close_span, self._apply
        for r in batch:
            if r.key is None or r.value is None:
                self.context.metrics.incr("dropped_null_records")
                continue
            ts = r.timestamp
            if ts > self.stream_time:
                self.stream_time = ts
                if final and ts - close_span >= self._next_due:
                    self._emit_due(out, ts - close_span)
            try:
                accepted = apply(r, out)
            except Exception as exc:
                self.context.report_error(r, exc, self.name)
                continue
            if not accepted:
                self.context.metrics.incr("late_records")
                log.debug("%s: dropped a late record at %d (stream time %d, grace %d ms)",
                          self.name, ts, self.stream_time, self.window.grace)
        self._last_activity = self.context.wall_clock_ms()
        if self.stream_time != started:
            self._advanced()
        self.forward(out)

    def _apply(self, r: Record, out: list[Record]) -> bool:
        """Fold one record into its windows; False if it is late for all of them."""
        raise NotImplementedError

    def _advanced(self) -> None:
        """Persist the new stream time and delete windows past retention, by one index range."""
        self.windows.set_stream_time(self.stream_time)
        cutoff = self.stream_time - self.retention
        if self._oldest is not None and cutoff < self._oldest:
            return  # nothing indexed is old enough: no scan
        low = None if self._expired_to is None else self._expired_to + 1
        expired = self.windows.expire(low, cutoff)
        if expired:
            self.context.metrics.incr("expired_windows", expired)
        self._expired_to = cutoff
        following = self.windows.first_indexed_after(cutoff)
        self._oldest = NOTHING_DUE if following is None else following

    # -- results

    def _created(self, index_time: int, wkey: bytes) -> None:
        """Index a new window, and in final mode remember it is due at index_time + close_span."""
        self.windows.add_index(index_time, wkey)
        if self._oldest is not None and index_time < self._oldest:
            self._oldest = index_time
        if self.final and index_time < self._next_due and index_time > self.stream_time - self.close_span:
            self._next_due = index_time

    def _bounds(self, first: int, second: int | None) -> tuple[int, int]:
        """(start, end) from the times in a window key."""
        return first, self.window.end_of(first)

    def _emit_due(self, out: list[Record], up_to: int | None) -> int | None:
        """Emit final results of windows with index time in [next due, up_to]; returns the last one's time."""
        deserialize_key, deserialize = self.key_serde.deserialize, self.value_serde.deserialize
        last = None
        for index_time, wkey in list(self.windows.indexed(self._next_due, up_to)):
            found = self.windows.get(wkey)
            if found is None:
                continue
            key, first, second = split_window_key(wkey)
            start, end = self._bounds(first, second)
            out.append(Record(Windowed(deserialize_key(key), start, end), deserialize(found[1]), found[0]))
            last = index_time
        following = None if up_to is None else self.windows.first_indexed_after(up_to)
        self._next_due = NOTHING_DUE if following is None else following
        return last

    def punctuate(self, wall_clock_ms: int) -> None:
        """Close every open window once the partition has been idle for idle_close (final mode only)."""
        if not self.final or self.idle_close is None or self._next_due == NOTHING_DUE:
            return
        if wall_clock_ms - self._last_activity < self.idle_close:
            return
        out: list[Record] = []
        last = self._emit_due(out, None)
        self._last_activity = wall_clock_ms
        if last is not None and last + self.close_span > self.stream_time:
            self.stream_time = last + self.close_span
            self._advanced()
        self.context.metrics.incr("idle_closes")
        self.forward(out)


class TimeWindowAggregate(WindowAggregate):
    """Tumbling and hopping windows: a record updates each still-open window that holds its timestamp."""

    window: Hopping

    def _apply(self, r: Record, out: list[Record]) -> bool:
        ts, window = r.timestamp, self.window
        deadline = self.stream_time - self.close_span
        last = ts - ts % window.advance
        if last <= deadline or last < 0:
            return False  # even the newest window holding ts has closed, or starts before the epoch
        starts = (last,) if window.advance == window.size else [s for s in window.starts_for(ts) if s > deadline]
        key, value = r.key, r.value
        prefix = key_prefix(self.key_serde.serialize(key))
        get, aggregator, deserialize = self.windows.store.get, self.aggregator, self.value_serde.deserialize
        changes = []
        for start in starts:
            wkey = prefix + pack_time(start)
            stored = get(wkey)
            if stored is None:
                changes.append((start, wkey, True, ts, aggregator(key, value, self.initializer())))
            else:
                newest = unpack_newest(stored)[0]
                changes.append((start, wkey, False, ts if ts > newest else newest,
                                aggregator(key, value, deserialize(stored[8:]))))
        serialize, put = self.value_serde.serialize, self.windows.put
        encoded = [serialize(change[4]) for change in changes]
        emit, size = not self.final, window.size
        for (start, wkey, new, newest, aggregate), raw in zip(changes, encoded, strict=True):
            put(wkey, newest, raw)
            if new:
                self._created(start, wkey)
            if emit:
                out.append(Record(Windowed(key, start, start + size), aggregate, newest, r.headers, r.origin))
        return True
