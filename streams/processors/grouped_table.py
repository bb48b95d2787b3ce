"""Re-grouping a table and aggregating it (Kafka Streams' KGroupedTable).

A table row can move between groups and change its value, so an aggregate over
a re-grouped table must take back what a row contributed before adding what it
contributes now.  TableGroupBy therefore remembers each row's previous value
(in its own "prior" store, in step with its input offsets) and sends a change
pair (old, new) through the repartition topic: one record when the row stays
in its group, or a subtraction to the old group and an addition to the new one
when it moves.  TableAggregate applies subtractor(old) then adder(new).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from streams.processors.api import StoreProcessor
from streams.processors.stateless import key_value_pair
from streams.record import Record
from streams.serdes import Serde

Change = tuple[Any, Any]
"""(old value or None, new value or None) of one row, as it travels to its group."""

NO_AGGREGATE = object()
"""A reduce's aggregate before its first value: nothing is stored or emitted for it."""

_OLD, _NEW = 1, 2
_LENGTH = struct.Struct(">I")


class ChangeSerde:
    """Serializes a change pair: a flags byte, the old value's length and bytes, then the new value's bytes."""

    def __init__(self, inner: Serde) -> None:
        self.inner = inner

    def serialize(self, change: Change | None) -> bytes | None:
        if change is None:
            return None
        old, new = change
        old_raw = b"" if old is None else self.inner.serialize(old)
        new_raw = b"" if new is None else self.inner.serialize(new)
        flags = (0 if old is None else _OLD) | (0 if new is None else _NEW)
        return bytes((flags,)) + _LENGTH.pack(len(old_raw)) + old_raw + new_raw

    def deserialize(self, data: bytes | None) -> Change | None:
        if data is None:
            return None
        flags, length = data[0], _LENGTH.unpack_from(data, 1)[0]
        deserialize = self.inner.deserialize
        old = deserialize(data[5:5 + length]) if flags & _OLD else None
        new = deserialize(data[5 + length:]) if flags & _NEW else None
        return old, new


class TableGroupBy(StoreProcessor):
    """selector(key, value) -> (group key, group value) for each row's old and new value; forwards change pairs.

    A row whose group key stays the same sends one (old, new) pair; one that moves
    sends (old, None) to its old group and (None, new) to its new one.  A None
    group key leaves the row out of every group.
    """

    def __init__(self, name: str, store_name: str, selector: Callable[[Any, Any], Any], key_serde: Serde,
                 value_serde: Serde) -> None:
        super().__init__(name, store_name)
        self.selector = selector
        self.key_serde = key_serde
        self.value_serde = value_serde

    def process(self, batch: list[Record]) -> None:
        get, put, delete = self.store.get, self.store.put, self.store.delete
        serialize_key, serialize, deserialize = self.key_serde.serialize, self.value_serde.serialize, \
            self.value_serde.deserialize
        selector, name, out = self.selector, self.name, []
        for r in batch:
            if r.key is None:
                self.context.metrics.incr("dropped_null_records", 1, self.name)
                continue
            try:
                key = serialize_key(r.key)
                old_raw = get(key)
                old = None if old_raw is None else key_value_pair(selector(r.key, deserialize(old_raw)), name)
                new = None if r.value is None else key_value_pair(selector(r.key, r.value), name)
                new_raw = None if r.value is None else serialize(r.value)
            except Exception as exc:
                self.context.report_error(r, exc, name)
                continue
            if new_raw is None:
                delete(key)
            else:
                put(key, new_raw)
            if old is not None and new is not None and old[0] == new[0]:
                if old[0] is not None:
                    out.append(Record(new[0], (old[1], new[1]), r.timestamp, r.headers, r.origin))
                continue
            if old is not None and old[0] is not None:
                out.append(Record(old[0], (old[1], None), r.timestamp, r.headers, r.origin))
            if new is not None and new[0] is not None:
                out.append(Record(new[0], (None, new[1]), r.timestamp, r.headers, r.origin))
        self.forward(out)


class TableAggregate(StoreProcessor):
    """The aggregate per group: subtractor(key, old, aggregate), then adder(key, new, aggregate)."""

    def __init__(self, name: str, store_name: str, initializer: Callable[[], Any],
                 adder: Callable[[Any, Any, Any], Any], subtractor: Callable[[Any, Any, Any], Any],
                 key_serde: Serde, value_serde: Serde) -> None:
        super().__init__(name, store_name)
        self.initializer = initializer
        self.adder = adder
        self.subtractor = subtractor
        self.key_serde = key_serde
        self.value_serde = value_serde

    def process(self, batch: list[Record]) -> None:
        get, put = self.store.get, self.store.put
        serialize_key, serialize, deserialize = self.key_serde.serialize, self.value_serde.serialize, \
            self.value_serde.deserialize
        initializer, adder, subtractor, out = self.initializer, self.adder, self.subtractor, []
        for r in batch:
            if r.key is None or r.value is None:
                self.context.metrics.incr("dropped_null_records", 1, self.name)
                continue
            old, new = r.value
            try:
                key = serialize_key(r.key)
                current = get(key)
                aggregate = initializer() if current is None else deserialize(current)
                if old is not None:
                    aggregate = subtractor(r.key, old, aggregate)
                if new is not None:
                    aggregate = adder(r.key, new, aggregate)
                if aggregate is NO_AGGREGATE:
                    continue
                put(key, serialize(aggregate))
            except Exception as exc:
                self.context.report_error(r, exc, self.name)
                continue
            out.append(Record(r.key, aggregate, r.timestamp, r.headers, r.origin))
        self.forward(out)


def reducers_as_aggregators(adder: Callable[[Any, Any], Any], subtractor: Callable[[Any, Any], Any]) \
        -> tuple[Callable[[], Any], Callable[[Any, Any, Any], Any], Callable[[Any, Any, Any], Any]]:
    """reduce(adder, subtractor) as an aggregate whose first value is the value itself."""

    def add(key: Any, value: Any, aggregate: Any) -> Any:
        return value if aggregate is NO_AGGREGATE else adder(aggregate, value)

    def subtract(key: Any, value: Any, aggregate: Any) -> Any:
        return aggregate if aggregate is NO_AGGREGATE else subtractor(aggregate, value)

    return (lambda: NO_AGGREGATE), add, subtract
