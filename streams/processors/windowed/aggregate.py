"""Windowed aggregation: the shared processor loop, and time (tumbling and hopping) windows.

The base class owns what every window kind shares, by Kafka Streams' rules, so
that both give the same results on the same input:

- stream time, the largest timestamp seen: each record advances it before it is
  judged, and it is kept in the store so that a restarted task resumes from it;
- store time, the largest index time written: retention is measured from it.  A
  window indexed at or below store time - retention is deleted and no longer
  seen by later records, as in Kafka Streams' window and session stores;
- dropping and counting late records;
- final results (emit="final"), as Kafka Streams' suppress(untilWindowCloses)
  gives them: windows close by the time of the results, the largest timestamp
  among the window changes written so far.  The first change a record writes
  with a newer timestamp moves it on, and every window then due (index time +
  close_span at or below it) is emitted from the store's time index, including
  that change; a window changed after its result went out (a sliding window at
  its close boundary, a session a late record extends) is emitted again at once;
- the idle close.

A subclass says how one record changes its windows (_apply) and writes each
changed window through _write.  Each record costs one aggregator call per window
it lands in; a record whose callback raises changes no window, because a
subclass computes every new aggregate before it writes any.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streams.processors.api import Processor
from streams.processors.late import LateDrops
from streams.record import Record
from streams.serdes import Serde
from streams.windows.definitions import Hopping, WindowDefinition, Windowed
from streams.windows.store import NO_TIME, WindowStore, key_prefix, pack_time, split_window_key, unpack_newest

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
        self.store_time = NO_TIME
        self._saved_store_time: int | None = None
        self._result_time = NO_TIME  # the largest timestamp of a window change written
        self._due_to = NO_TIME  # final results of windows indexed up to here are out
        self._next_due = NOTHING_DUE  # no window is indexed in (_due_to, _next_due)
        self._oldest: int | None = None  # no window is indexed below this time (None: not known yet)
        self._last_activity = 0
        self.late = LateDrops(name)

    def init(self, context: Any) -> None:
        super().init(context)
        self.windows = WindowStore(context.get_store(self.store_name))
        self.stream_time = self.windows.stream_time()
        self._saved_store_time = self.windows.store_time()
        self.store_time = self.stream_time if self._saved_store_time is None else self._saved_store_time
        self._result_time = self.stream_time
        self._due_to = self.stream_time - self.close_span
        if self.final:
            due = self.windows.first_indexed_after(self._due_to)
            self._next_due = NOTHING_DUE if due is None else due
        self._last_activity = context.wall_clock_ms()

    @property
    def visible_from(self) -> int:
        """The lowest index time that later records still see (older windows are past retention)."""
        return self.store_time - self.retention + 1

    @property
    def expired_to(self) -> int:
        """The highest index time past retention; _expire deletes windows up to it."""
        return self.store_time - self.retention

    # -- the loop

    def process(self, batch: list[Record]) -> None:
        out: list[Record] = []
        started, stored = self.stream_time, self.store_time
        apply = self._apply
        for r in batch:
            if r.key is None or r.value is None:
                self.context.metrics.incr("dropped_null_records", 1, self.name)
                continue
            ts = r.timestamp
            if ts > self.stream_time:
                self.stream_time = ts
            try:
                accepted = apply(r, out)
            except Exception as exc:
                self.context.report_error(r, exc, self.name)
                accepted = True
            if not accepted:
                self.late.dropped(self.context, ts, self.stream_time, self.window.grace)
        self._last_activity = self.context.wall_clock_ms()
        if self.stream_time != started or self.store_time != stored:
            self._save_times()
        self._expire()
        self.forward(out)

    def _apply(self, r: Record, out: list[Record]) -> bool:
        """Fold one record into its windows; False if it is late for all of them."""
        raise NotImplementedError

    def _write(self, index_time: int, wkey: bytes, newest: int, raw: bytes, new: bool, key: Any, start: int,
               end: int, aggregate: Any, r: Record, out: list[Record], emit: bool = True) -> None:
        """Store one window's new aggregate and emit what the mode asks for.

        The window's Windowed(key, start, end) is made only for an emitted change.
        Update mode emits every change.  Final mode emits a change to a window whose final
        result is out already at once; a change with a newer timestamp than any before
        moves the time of the results on and emits the windows it closes.  emit=False
        stores a change that is never emitted (a closed exact sliding window).
        """
        self.windows.put(wkey, newest, raw)
        if new:
            self.windows.add_index(index_time, wkey)
            if self._oldest is not None and index_time < self._oldest:
                self._oldest = index_time
        if index_time > self.store_time:
            self.store_time = index_time
        if not emit:
            return
        if not self.final:
            out.append(Record(Windowed(key, start, end), aggregate, newest, r.headers, r.origin))
            return
        if index_time <= self._due_to:
            out.append(Record(Windowed(key, start, end), aggregate, newest))
        elif index_time < self._next_due:
            self._next_due = index_time
        if newest > self._result_time:
            self._result_time = newest
            due = newest - self.close_span
            if due >= self._next_due:
                self._emit_due(out, due)
            self._due_to = due

    def _save_times(self) -> None:
        self.windows.set_stream_time(self.stream_time)
        if self.store_time != self._saved_store_time:
            self.windows.set_store_time(self.store_time)
            self._saved_store_time = self.store_time

    def _expire(self) -> None:
        """Delete windows past retention (even one a late record just wrote) by one index range."""
        cutoff = self.expired_to
        if self._oldest is not None and cutoff < self._oldest:
            return  # nothing indexed is old enough: no scan
        expired = self.windows.expire(self._oldest, cutoff)
        if expired:
            self.context.metrics.incr("expired_windows", expired, self.name)
        following = self.windows.first_indexed_after(cutoff)
        self._oldest = NOTHING_DUE if following is None else following

    # -- results

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
            self.stream_time = self._result_time = last + self.close_span
            self._due_to = last
            self._save_times()
        self.context.metrics.incr("idle_closes", 1, self.name)
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
        key, value = r.key, r.value
        prefix = key_prefix(self.key_serde.serialize(key))
        get, aggregator, deserialize = self.windows.store.get, self.aggregator, self.value_serde.deserialize
        if window.advance == window.size:  # tumbling: one window, no lists to build
            wkey = prefix + pack_time(last)
            stored = get(wkey)
            if stored is None:
                new, newest, aggregate = True, ts, aggregator(key, value, self.initializer())
            else:
                new, newest = False, unpack_newest(stored)[0]
                aggregate = aggregator(key, value, deserialize(stored[8:]))
            raw = self.value_serde.serialize(aggregate)
            self._write(last, wkey, ts if ts > newest else newest, raw, new, key, last, last + window.size,
                        aggregate, r, out)
            return True
        starts = [s for s in window.starts_for(ts) if s > deadline]
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
        serialize, write, size = self.value_serde.serialize, self._write, window.size
        encoded = [serialize(change[4]) for change in changes]
        for (start, wkey, new, newest, aggregate), raw in zip(changes, encoded, strict=True):
            write(start, wkey, newest, raw, new, key, start, start + size, aggregate, r, out)
        return True
