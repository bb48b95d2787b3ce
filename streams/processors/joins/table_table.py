"""Table-table joins: the result row of a key changes whenever either side's row does.

Each side's updates go through their own processor, which reads the other
side's store after its own store has taken the update, so both processors see
both tables as of the update.  When the update leaves no result for a key that
may have had one, the join emits None for it: downstream sees a delete.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streams.processors.api import StoreProcessor
from streams.record import Record
from streams.serdes import Serde

KINDS = ("inner", "left", "outer")
_NOTHING = object()


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

    def __init__(self, name: str, kind: str, left_side: bool, other_store: str, key_serde: Serde,
                 other_value_serde: Serde, joiner: Callable[[Any, Any], Any]) -> None:
        super().__init__(name, other_store)
        self.kind = kind
        self.left_side = left_side
        self.key_serde = key_serde
        self.other_value_serde = other_value_serde
        self.joiner = joiner

    def process(self, batch: list[Record]) -> None:
        get, serialize_key = self.store.get, self.key_serde.serialize
        deserialize, kind, left_side, joiner, out = self.other_value_serde.deserialize, self.kind, self.left_side, \
            self.joiner, []
        for r in batch:
            if r.key is None:
                continue
            try:
                raw = get(serialize_key(r.key))
                other = None if raw is None else deserialize(raw)
                left, right = (r.value, other) if left_side else (other, r.value)
                value = table_join_result(kind, left, right, left_side, joiner)
            except Exception as exc:
                self.context.report_error(r, exc, self.name)
                continue
            if value is not _NOTHING:
                out.append(Record(r.key, value, r.timestamp, r.headers, r.origin))
        self.forward(out)
