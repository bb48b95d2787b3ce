"""Wall-clock closing for left and outer stream-stream joins (the join's close_on_wall_clock=True).

Unmatched results wait for stream time, which only records move: on a partition
that goes quiet, an unmatched record would wait for the next record.  This
processor lets wall-clock time stand in for missing records.  It takes no
records; on each punctuation it measures how long stream time has stood still
and counts that idle time on top of it:

    effective time = stream time + (now - wall-clock time when stream time last moved)

Every buffered record of an outer side whose window has closed by the effective
time leaves its buffer, and one that never joined gets its unmatched result, as
it would have once stream time got there.  Stream time itself does not move, so
later records are not made late by it; but a record that arrives after its
partner left this way finds no partner to join.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streams.processors.api import Processor
from streams.processors.joins.stream_stream import JoinState
from streams.record import Record
from streams.serdes import Serde
from streams.windows.join_windows import JoinWindows


class WallClockClose(Processor):
    """Emits the unmatched records of a left or outer join whose windows closed in wall-clock time."""

    def __init__(self, name: str, kind: str, window: JoinWindows, left_store: str, right_store: str,
                 key_serde: Serde, left_serde: Serde, right_serde: Serde, joiner: Callable[[Any, Any], Any]) -> None:
        super().__init__(name)
        self.outer = (kind in ("left", "outer"), kind == "outer")
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
            self.context.metrics.incr("wall_clock_unmatched", len(out))
        self.forward(out)
