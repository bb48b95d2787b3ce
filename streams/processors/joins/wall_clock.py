"""Wall-clock closing for left and outer stream-stream joins (the join's close_on_wall_clock=True).

Unmatched results wait for stream time, which only records move: on a partition
that goes quiet, an unmatched record would wait for the next record.  This
processor lets wall-clock time stand in for missing records.  It takes no
records; on each punctuation it measures how long stream time has stood still
and counts that idle time on top of it:

    effective time = stream time + (now - wall-clock time when stream time last moved)

Every unmatched record of an outer side whose window has closed by the effective
time gets its unmatched result, as it would have once stream time got there.
Stream time itself does not move, so later records are not made late by it.
With JoinWindows(late="drop") such a record also leaves its buffer, and one that
arrives after its partner left this way finds no partner to join; with the
default rules the partner stays kept, and a late match can follow the result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streams.processors.api import Processor
from streams.processors.joins.stream_stream import JoinState, unmatched_results
from streams.record import Record
from streams.serdes import Serde
from streams.windows.join_store import LEFT
from streams.windows.join_windows import JoinWindows


class WallClockClose(Processor):
    """Emits the unmatched records of a left or outer join whose windows closed in wall-clock time."""

    def __init__(self, name: str, kind: str, window: JoinWindows, left_store: str, right_store: str,
                 key_serde: Serde, left_serde: Serde, right_serde: Serde, joiner: Callable[[Any, Any], Any]) -> None:
        super().__init__(name)
        self.outer = (kind in ("left", "outer"), kind == "outer")
        self.window = window
        self.spans = (window.left_close_span, window.right_close_span)
        self.store_names = (left_store, right_store)
        self.key_serde = key_serde
        self.serdes = (left_serde, right_serde)
        self.joiner = joiner
        self.state: JoinState = None  # type: ignore[assignment]
        self.seen_time = 0
        self.moved_at = 0

    def init(self, context: Any) -> None:
        super().init(context)
        self.state = JoinState.of(*(context.get_store(name) for name in self.store_names))
        self.seen_time = self.state.stream_time
        self.moved_at = context.wall_clock_ms()

    def process(self, batch: list[Record]) -> None:
        """Takes no records: it has no parent."""

    def punctuate(self, wall_clock_ms: int) -> None:
        state = self.state
        if state.stream_time != self.seen_time:
            self.seen_time, self.moved_at = state.stream_time, wall_clock_ms
            return
        effective = state.stream_time + wall_clock_ms - self.moved_at
        if self.window.late == "join":
            self._emit_pending(effective)
            return
        out: list[Record] = []
        deserialize_key, joiner = self.key_serde.deserialize, self.joiner
        for index, buffer in enumerate((state.left, state.right)):
            if not self.outer[index]:
                continue
            deserialize = self.serdes[index].deserialize
            for key, ts, joined, raw in buffer.expire(effective - self.spans[index] - 1):
                if joined:
                    continue
                try:
                    value = deserialize(raw)
                    out.append(Record(deserialize_key(key), joiner(value, None) if index == 0 else joiner(None, value),
                                      ts))
                except Exception as exc:
                    self.context.report_error(None, exc, self.name)
        if out:
            self.context.metrics.incr("wall_clock_unmatched", len(out), self.name)
        self.forward(out)

    def _emit_pending(self, effective: int) -> None:
        """Kafka Streams' rules: the waiting unmatched records closed by the effective time go out."""
        window, pending = self.window, self.state.pending
        closed = [entry for entry in pending.entries()
                  if entry[1] + (window.after if entry[2] == LEFT else window.before) + window.grace < effective]
        out = unmatched_results(self, closed)
        pending.since = None  # the oldest one left is not known now: look again at the next record
        self.state.save()
        if out:
            self.context.metrics.incr("wall_clock_unmatched", len(out), self.name)
        self.forward(out)
