"""Stream-stream joins: both sides buffered per key and time, joined within JoinWindows.

Each side has a processor and a buffer (windows/join_store.py) in its own
changelogged store.  The two processors of one task share one stream time, the
largest timestamp either side has seen, kept in the left buffer's store.

For each record, in arrival order:

1. If its timestamp advances stream time, every buffered record whose window
   has now closed leaves its buffer; on the outer side(s) of a left or outer
   join, a record that never joined gets its joiner(value, None) result (or
   joiner(None, value) on the right) at this point, timestamped with its own
   time.  A closed record never joins again, so that result is final.
2. A record whose own window has already closed is late: dropped and counted.
3. It joins every buffered record of the other side with its key in its time
   range (all of them are open: closed ones left in step 1); each result is
   timestamped with the later of the two times.
4. It is buffered until its own window closes.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from streams.processors.api import Processor
from streams.record import Record
from streams.serdes import Serde
from streams.windows.join_store import JoinBuffer
from streams.windows.join_windows import JoinWindows

_SHARED: weakref.WeakKeyDictionary[Any, JoinState] = weakref.WeakKeyDictionary()


class JoinState:
    """What the two side processors of one join in one task share: both buffers and the stream time."""

    def __init__(self, left_store: Any, right_store: Any) -> None:
        self.left = JoinBuffer(left_store)
        self.right = JoinBuffer(right_store)
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
        if self.stream_time != self._saved_time:
            self.left.set_stream_time(self.stream_time)
            self._saved_time = self.stream_time


class StreamJoinSide(Processor):
    """One side of a windowed stream-stream join; joiner(left_value, right_value) for each match."""

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

    def init(self, context: Any) -> None:
        super().init(context)
        self.state = JoinState.of(*(context.get_store(name) for name in self.store_names))

    def process(self, batch: list[Record]) -> None:
        state, left_side, joiner, out = self.state, self.left_side, self.joiner, []
        this, other = (state.left, state.right) if left_side else (state.right, state.left)
        this_index = 0 if left_side else 1
        span, (before, after) = self.spans[this_index], self.reach
        track_other = self.outer[1 - this_index]
        serialize_key = self.key_serde.serialize
        serialize, other_deserialize = self.serdes[this_index].serialize, self.serdes[1 - this_index].deserialize
        metrics = self.context.metrics
        for r in batch:
            if r.key is None or r.value is None:
                metrics.incr("dropped_null_records", 1, self.name)
                continue
            ts = r.timestamp
            if ts > state.stream_time:
                state.stream_time = ts
                self._close(out)
            if ts + span < state.stream_time:
                metrics.incr("late_records", 1, self.name)
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
                    other_value = other_deserialize(raw)
                    result = joiner(r.value, other_value) if left_side else joiner(other_value, r.value)
                except Exception as exc:
                    self.context.report_error(r, exc, self.name)
                    continue
                out.append(Record(r.key, result, ts if ts > other_ts else other_ts, r.headers, r.origin))
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
