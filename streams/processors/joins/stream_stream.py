"""Stream-stream joins: both sides buffered per key and time, joined within JoinWindows.

Each side has a processor and a buffer (streams/windows/join_store.py) in its own
changelogged store.  The two processors of one task share one stream time, the
largest timestamp either side has seen, kept in the left buffer's store.

By default the join follows Kafka Streams' rules (JoinWindows(late="join")).  For
each record, in arrival order:

1. It advances stream time.  If it is the newest record so far, the unmatched
   records (left or outer join) whose window has closed get their result now:
   joiner(value, None), or joiner(None, value) on the right, timestamped with
   their own time.  Like Kafka Streams, the join looks for them only once the
   oldest one it knew of has closed, so a result can come later than the close.
2. It joins every record of the other side with its key in its time range that
   the other side still keeps: a side keeps its records until its newest one is
   more than before + after + grace ahead.  A kept record may have closed, so a
   late record still joins, even one whose unmatched result is out already.
   Each result is timestamped with the later of the two times.
3. On an outer side without a match, it waits for its window to close, or, if
   that has closed already, gets its unmatched result at once.
4. It is buffered.

With JoinWindows(late="drop") a window that closes is final instead (StrictJoinSide):
records leave their buffer when their window closes, the unmatched ones with
their result, and a record whose own window has closed on arrival is dropped.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from streams.processors.api import Processor
from streams.processors.late import LateDrops
from streams.record import Record
from streams.serdes import Serde
from streams.windows.join_store import LEFT, RIGHT, JoinBuffer, PendingUnmatched
from streams.windows.join_windows import JoinWindows

_SHARED: weakref.WeakKeyDictionary[Any, JoinState] = weakref.WeakKeyDictionary()


class JoinState:
    """What the two side processors of one join in one task share: both buffers, the stream time and,
    for left and outer joins, the unmatched records waiting for their window to close."""

    def __init__(self, left_store: Any, right_store: Any) -> None:
        self.left = JoinBuffer(left_store)
        self.right = JoinBuffer(right_store)
        self.pending = PendingUnmatched(left_store)
        self.stream_time = self._saved_time = self.left.stream_time()

    @classmethod
    def of(cls, left_store: Any, right_store: Any) -> JoinState:
        """The state of the task owning left_store: the first side processor makes it, the second finds it."""
        state = _SHARED.get(left_store)
        if state is None:
            state = _SHARED[left_store] = cls(left_store, right_store)
        return state

    def save(self) -> None:
        self.left.save()
        self.right.save()
        self.pending.save()
        if self.stream_time != self._saved_time:
            self.left.set_stream_time(self.stream_time)
            self._saved_time = self.stream_time


class StreamJoinSide(Processor):
    """One side of a windowed stream-stream join by Kafka Streams' rules; joiner(left_value, right_value)."""

    def __init__(self, name: str, left_side: bool, kind: str, window: JoinWindows, left_store: str,
                 right_store: str, key_serde: Serde, left_serde: Serde, right_serde: Serde,
                 joiner: Callable[[Any, Any], Any]) -> None:
        super().__init__(name)
        self.left_side = left_side
        self.window = window
        self.store_names = (left_store, right_store)
        self.key_serde = key_serde
        self.serdes = (left_serde, right_serde)
        self.joiner = joiner
        self.outer = (kind in ("left", "outer"), kind == "outer")
        self.spans = (window.left_close_span, window.right_close_span)
        # A left record at t meets right times in [t - before, t + after]; a right one the mirror image.
        self.reach = (window.before, window.after) if left_side else (window.after, window.before)
        self.state: JoinState = None  # type: ignore[assignment]
        self.late = LateDrops(name)

    def init(self, context: Any) -> None:
        super().init(context)
        self.state = JoinState.of(*(context.get_store(name) for name in self.store_names))

    def _result(self, this_value: Any, other_value: Any) -> Any:
        return self.joiner(this_value, other_value) if self.left_side else self.joiner(other_value, this_value)

    def process(self, batch: list[Record]) -> None:
        state, out = self.state, []
        this_index = 0 if self.left_side else 1
        this, other = (state.left, state.right) if self.left_side else (state.right, state.left)
        this_side, other_side = (LEFT, RIGHT) if self.left_side else (RIGHT, LEFT)
        before, after = self.reach
        outer_this = self.outer[this_index]
        pending = state.pending if self.outer[0] else None
        retention = self.window.retention
        serialize_key = self.key_serde.serialize
        serialize, other_deserialize = self.serdes[this_index].serialize, self.serdes[1 - this_index].deserialize
        metrics, result = self.context.metrics, self._result
        for r in batch:
            ts = r.timestamp
            if ts > state.stream_time:
                state.stream_time = ts
            if r.key is None or r.value is None:
                if outer_this and r.key is None and r.value is not None:
                    self._unmatched(out, r, r.value)
                else:
                    metrics.incr("dropped_null_records", 1, self.name)
                continue
            try:
                key, value = serialize_key(r.key), serialize(r.value)
            except Exception as exc:
                self.context.report_error(r, exc, self.name)
                continue
            if pending is not None and ts == state.stream_time:
                self._emit_closed(out)
            matches = other.fetch(key, max(ts - before, other.store_time - retention + 1), ts + after)
            for _, other_ts, _, raw in matches:
                if pending is not None:
                    pending.discard(other_side, key, other_ts)
                try:
                    joined = result(r.value, other_deserialize(raw))
                except Exception as exc:
                    self.context.report_error(r, exc, self.name)
                    continue
                out.append(Record(r.key, joined, ts if ts > other_ts else other_ts, r.headers, r.origin))
            if outer_this and not matches:
                if ts + after < state.stream_time:
                    self._unmatched(out, r, r.value)
                else:
                    pending.since = ts if pending.since is None else min(pending.since, ts)
                    pending.add(this_side, key, ts, value)
            this.add(key, ts, value, False)
        for buffer in (state.left, state.right):
            buffer.expire(buffer.store_time - retention)
        state.save()
        self.forward(out)

    def _unmatched(self, out: list[Record], r: Record, value: Any) -> None:
        try:
            out.append(Record(r.key, self._result(value, None), r.timestamp, r.headers, r.origin))
        except Exception as exc:
            self.context.report_error(r, exc, self.name)

    def _emit_closed(self, out: list[Record]) -> None:
        """Emit the waiting unmatched records whose window has closed, oldest first."""
        state, window, pending = self.state, self.window, self.state.pending
        now, grace = state.stream_time, window.grace
        if pending.since is not None and pending.since + self.reach[1] + grace >= now:
            return  # the oldest one known is still open (judged by this side's reach, as Kafka Streams does)
        pending.since = None
        open_sides: set[bytes] = set()
        closed = []
        for entry in pending.entries():
            pending.since = entry[1]
            if len(open_sides) == 2:
                break
            if entry[1] + (window.after if entry[2] == LEFT else window.before) + grace >= now:
                open_sides.add(entry[2])  # this side's later entries are open too
                continue
            closed.append(entry)
        out.extend(unmatched_results(self, closed))


def unmatched_results(processor: Any, entries: list[tuple[bytes, int, bytes, bytes, list[bytes]]]) -> list[Record]:
    """The unmatched results of pending entries (which leave the pending list), made by `processor`: a join
    side or the wall-clock closer, either of which has the join's state, serdes, joiner and context."""
    out = []
    deserialize_key, joiner, pending = processor.key_serde.deserialize, processor.joiner, processor.state.pending
    for pkey, ts, side, key, values in entries:
        deserialize = processor.serdes[0 if side == LEFT else 1].deserialize
        for raw in values:
            try:
                value = deserialize(raw)
                out.append(Record(deserialize_key(key), joiner(value, None) if side == LEFT else joiner(None, value),
                                  ts))
            except Exception as exc:
                processor.context.report_error(None, exc, processor.name)
        pending.remove(pkey)
    return out


class StrictJoinSide(StreamJoinSide):
    """One side of a join whose closed windows are final (JoinWindows(late="drop"))."""

    def process(self, batch: list[Record]) -> None:
        state, left_side, out = self.state, self.left_side, []
        this, other = (state.left, state.right) if left_side else (state.right, state.left)
        this_index = 0 if left_side else 1
        span, (before, after) = self.spans[this_index], self.reach
        track_other = self.outer[1 - this_index]
        serialize_key = self.key_serde.serialize
        serialize, other_deserialize = self.serdes[this_index].serialize, self.serdes[1 - this_index].deserialize
        metrics, result = self.context.metrics, self._result
        for r in batch:
            if r.key is None or r.value is None:
                metrics.incr("dropped_null_records", 1, self.name)
                continue
            ts = r.timestamp
            if ts > state.stream_time:
                state.stream_time = ts
                self._close(out)
            if ts + span < state.stream_time:
                self.late.dropped(self.context, ts, state.stream_time, self.window.grace)
                continue
            try:
                key, value = serialize_key(r.key), serialize(r.value)
            except Exception as exc:
                self.context.report_error(r, exc, self.name)
                continue
            matches = other.fetch(key, ts - before, ts + after)
            for rkey, other_ts, joined, raw in matches:
                if track_other and not joined:
                    other.mark_matched(rkey, raw)
                try:
                    value_out = result(r.value, other_deserialize(raw))
                except Exception as exc:
                    self.context.report_error(r, exc, self.name)
                    continue
                out.append(Record(r.key, value_out, ts if ts > other_ts else other_ts, r.headers, r.origin))
            this.add(key, ts, value, bool(matches))
        state.save()
        self.forward(out)

    def _close(self, out: list[Record]) -> None:
        """Drop records whose window closed; emit the outer side's unmatched ones."""
        state, joiner, deserialize_key = self.state, self.joiner, self.key_serde.deserialize
        for index, buffer in enumerate((state.left, state.right)):
            closed = buffer.expire(state.stream_time - self.spans[index] - 1)
            if not self.outer[index]:
                continue
            deserialize = self.serdes[index].deserialize
            for key, ts, joined, raw in closed:
                if joined:
                    continue
                try:
                    value = deserialize(raw)
                    result = joiner(value, None) if index == 0 else joiner(None, value)
                    out.append(Record(deserialize_key(key), result, ts))
                except Exception as exc:
                    self.context.report_error(None, exc, self.name)
