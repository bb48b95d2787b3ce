"""Table-table joins: the result row of a key changes whenever either side's row does.

Each side's updates go through their own processor, which reads the other
side's store after its own store has taken the update, so both processors see
both tables as of the update.  When the update leaves no result for a key that
may have had one, the join emits None for it: downstream sees a delete.  A delete
of a key that had no row, while the other side has none either, changed nothing
and emits nothing (as in Kafka Streams).

A result is timestamped, as in Kafka Streams, with the later of the update's time
and the time of the other side's row.  Table stores hold values only, so the join
keeps the time of each side's current row in a store of its own (the times
store: side byte + key -> 8-byte time); a row it has not seen go by (one loaded
by preload=True) counts as having no time.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from streams.processors.api import StoreProcessor
from streams.record import Record
from streams.serdes import Serde

KINDS = ("inner", "left", "outer")
_NOTHING = object()
_TIME = struct.Struct(">q")
_SIDES = (b"l", b"r")


def table_join_result(kind: str, left: Any, right: Any, left_updated: bool,
                      joiner: Callable[[Any, Any], Any]) -> Any:
    """The row to emit after an update (None is a delete), or _NOTHING when the result cannot have changed."""
    if kind == "inner":
        if left is not None and right is not None:
            return joiner(left, right)
        other = right if left_updated else left
        return None if other is not None else _NOTHING
    if kind == "left":
        if left is None:
            return None if left_updated else _NOTHING
        return joiner(left, right)
    if left is None and right is None:
        return None
    return joiner(left, right)


class TableJoinSide(StoreProcessor):
    """Joins one side's updates with the other side's current rows."""

    def __init__(self, name: str, kind: str, left_side: bool, other_store: str, times_store: str,
                 key_serde: Serde, other_value_serde: Serde, joiner: Callable[[Any, Any], Any]) -> None:
        super().__init__(name, other_store)
        self.kind = kind
        self.left_side = left_side
        self.times_store_name = times_store
        self.key_serde = key_serde
        self.other_value_serde = other_value_serde
        self.joiner = joiner
        self.times: Any = None

    def init(self, context: Any) -> None:
        super().init(context)
        self.times = context.get_store(self.times_store_name)

    def process(self, batch: list[Record]) -> None:
        get, serialize_key = self.store.get, self.key_serde.serialize
        deserialize, kind, left_side, joiner, out = self.other_value_serde.deserialize, self.kind, self.left_side, \
            self.joiner, []
        times = self.times
        this_side, other_side = _SIDES if left_side else _SIDES[::-1]
        for r in batch:
            if r.key is None:
                continue
            try:
                key = serialize_key(r.key)
                raw = get(key)
                other = None if raw is None else deserialize(raw)
                if r.value is None:
                    times.delete(this_side + key)
                    if other is None and not getattr(r, "existed", True):
                        continue  # deleting nothing, and nothing on the other side: no result changed
                else:
                    times.put(this_side + key, _TIME.pack(r.timestamp))
                left, right = (r.value, other) if left_side else (other, r.value)
                value = table_join_result(kind, left, right, left_side, joiner)
            except Exception as exc:
                self.context.report_error(r, exc, self.name)
                continue
            if value is _NOTHING:
                continue
            ts = r.timestamp
            if other is not None:
                other_time = times.get(other_side + key)
                if other_time is not None:
                    ts = max(ts, _TIME.unpack(other_time)[0])
            out.append(Record(r.key, value, ts, r.headers, r.origin))
        self.forward(out)
