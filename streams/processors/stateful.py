"""Stateful operators: aggregations and table materialization.

They keep state in the task's store through the store's write cache, so a
commit sends one changelog record per changed key.  An aggregation also keeps
its downstream updates in a record cache (streams/processors/record_cache.py)
unless the `cache_max_bytes` setting is 0: downstream sees the last update per
key at each commit.  Values are serialized into
the store with the table's serdes; what they forward downstream is the new
value, keyed and timestamped like the record that caused it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from streams.processors.api import Processor, StoreProcessor
from streams.processors.record_cache import ENTRY_OVERHEAD, RecordCache
from streams.record import Record
from streams.serdes import Serde
from streams.state.versioned import DROPPED, LATEST, VersionedStore

log = logging.getLogger(__name__)


class Aggregate(StoreProcessor):
    """aggregate(initializer, aggregator): the new aggregate per key, in the store and downstream."""

    def __init__(self, name: str, store_name: str, initializer: Callable[[], Any],
                 aggregator: Callable[[Any, Any, Any], Any], key_serde: Serde, value_serde: Serde) -> None:
        super().__init__(name, store_name)
        self.initializer = initializer
        self.aggregator = aggregator
        self.key_serde = key_serde
        self.value_serde = value_serde

    def init(self, context: Any) -> None:
        super().init(context)
        budget = context.cache_budget
        self.cache = RecordCache(budget) if budget is not None and budget.enabled else None

    def process(self, batch: list[Record]) -> None:
        get, put = self.store.get, self.store.put
        serialize_key = self.key_serde.serialize
        serialize, deserialize = self.value_serde.serialize, self.value_serde.deserialize
        initializer, aggregator, cache, out = self.initializer, self.aggregator, self.cache, []
        pending = cache.entries if cache is not None else None
        grown = 0
        for r in batch:
            if r.key is None or r.value is None:
                self.context.metrics.incr("dropped_null_records", 1, self.name)
                continue
            try:
                key = serialize_key(r.key)
                current = get(key)
                aggregate = aggregator(r.key, r.value, initializer() if current is None else deserialize(current))
                value = serialize(aggregate)
                put(key, value)
            except Exception as exc:
                self.context.report_error(r, exc, self.name)
                continue
            update = Record(r.key, aggregate, r.timestamp, r.headers, r.origin)
            if pending is None:
                out.append(update)
            else:
                if key not in pending:
                    grown += len(key) + len(value) + ENTRY_OVERHEAD
                pending[key] = update
        if cache is not None and cache.grown(grown):
            out = cache.take()
        self.forward(out)

    def flush_cache(self) -> None:
        if self.cache is not None:
            self.forward(self.cache.take())

    def drop_cache(self) -> None:
        if self.cache is not None:
            self.cache.take()

    def close(self) -> None:
        self.drop_cache()  # gives its bytes back to the worker's budget


def reducer_as_aggregator(reducer: Callable[[Any, Any], Any]) -> tuple[Callable[[], Any], Callable]:
    """reduce(f) is an aggregate whose first value is the value itself."""
    missing = object()

    def aggregate(key: Any, value: Any, current: Any) -> Any:
        return value if current is missing else reducer(current, value)

    return (lambda: missing), aggregate


class TableDelete(Record):
    """A table's delete of a key, saying whether the key had a row.

    A table-table join emits nothing for deleting a row that was not there when
    the other side has none either, as Kafka Streams does with the old values it
    sends along.  Operators that copy records drop this to a plain Record, whose
    deletes count as deleting a row.
    """

    __slots__ = ("existed",)

    def __init__(self, r: Record, existed: bool) -> None:
        super().__init__(r.key, None, r.timestamp, r.headers, r.origin)
        self.existed = existed


class TableSource(StoreProcessor):
    """Materializes a topic as a table: a value upserts its key, a tombstone deletes it."""

    def __init__(self, name: str, store_name: str, key_serde: Serde, value_serde: Serde) -> None:
        super().__init__(name, store_name)
        self.key_serde = key_serde
        self.value_serde = value_serde

    def init(self, context: Any) -> None:
        super().init(context)
        # Restore brought the store to this offset of its topic.  Records below it, replayed from an
        # older committed offset, pass downstream but must not roll rows back to older values.
        self.restored_to = self.store.checkpoint() or 0

    def process(self, batch: list[Record]) -> None:
        get, put, delete, restored_to = self.store.get, self.store.put, self.store.delete, self.restored_to
        out = []
        for r in batch:
            if r.key is None:
                continue
            raw = r.origin
            if raw is not None and raw.offset < restored_to:
                out.append(r)
                continue
            if raw is None:
                key = self.key_serde.serialize(r.key)
                value = self.value_serde.serialize(r.value)
            else:
                key, value = raw.key, raw.value
            if value is None:
                existed = get(key) is not None
                delete(key)
                out.append(TableDelete(r, existed))
                continue
            put(key, value)
            out.append(r)
        self.forward(out)


class TableFilter(Processor):
    """A table filter forwards a tombstone where the predicate fails, so downstream forgets the key."""

    def __init__(self, name: str, predicate: Callable[[Any, Any], bool], keep: bool = True) -> None:
        super().__init__(name)
        self.predicate = predicate
        self.keep = keep

    def process(self, batch: list[Record]) -> None:
        predicate, keep, out = self.predicate, self.keep, []
        for r in batch:
            try:
                passes = r.value is not None and bool(predicate(r.key, r.value)) is keep
            except Exception as exc:
                self.context.report_error(r, exc, self.name)
                continue
            out.append(r if passes else Record(r.key, None, r.timestamp, r.headers, r.origin))
        self.forward(out)


class TableMapValues(Processor):
    """Maps table values; tombstones stay tombstones."""

    def __init__(self, name: str, fn: Callable[[Any], Any]) -> None:
        super().__init__(name)
        self.fn = fn

    def process(self, batch: list[Record]) -> None:
        fn, out = self.fn, []
        for r in batch:
            try:
                value = None if r.value is None else fn(r.value)
            except Exception as exc:
                self.context.report_error(r, exc, self.name)
                continue
            out.append(Record(r.key, value, r.timestamp, r.headers, r.origin))
        self.forward(out)


class TableMaterialize(StoreProcessor):
    """Writes every row of a computed table into a store (None deletes the key) and forwards it.

    A table made by filter() or map_values() has no store of its own; a join needs
    one to look rows up, so the join adds this node in front of it.  Stream.to_table()
    uses it too.
    """

    def __init__(self, name: str, store_name: str, key_serde: Serde, value_serde: Serde) -> None:
        super().__init__(name, store_name)
        self.key_serde = key_serde
        self.value_serde = value_serde

    def process(self, batch: list[Record]) -> None:
        get, put, delete = self.store.get, self.store.put, self.store.delete
        serialize_key, serialize = self.key_serde.serialize, self.value_serde.serialize
        out = []
        for r in batch:
            if r.key is None:
                continue
            try:
                key = serialize_key(r.key)
                if r.value is None:
                    existed = get(key) is not None
                    delete(key)
                    out.append(TableDelete(r, existed))
                    continue
                put(key, serialize(r.value))
            except Exception as exc:
                self.context.report_error(r, exc, self.name)
                continue
            out.append(r)
        self.forward(out)


class VersionedTableSource(Processor):
    """Materializes a topic as a versioned table: every record becomes a version at its timestamp.

    An update older than the key's latest version goes into its history only; what
    flows downstream, and into the latest-value store, are the updates that are the
    key's latest version.  Updates older than the history retention are dropped
    and counted (late_records).
    """

    def __init__(self, name: str, store_name: str, versions_store: str, retention: int, key_serde: Serde,
                 value_serde: Serde) -> None:
        super().__init__(name)
        self.store_name = store_name
        self.versions_store = versions_store
        self.retention = retention
        self.key_serde = key_serde
        self.value_serde = value_serde

    def init(self, context: Any) -> None:
        super().init(context)
        self.latest = context.get_store(self.store_name)
        self.versions = VersionedStore.of(context.get_store(self.versions_store), self.retention)

    def process(self, batch: list[Record]) -> None:
        put_version, put, delete, out = self.versions.put, self.latest.put, self.latest.delete, []
        for r in batch:
            if r.key is None:
                self.context.metrics.incr("dropped_null_records", 1, self.name)
                continue
            try:
                key = self.key_serde.serialize(r.key)
                value = None if r.value is None else self.value_serde.serialize(r.value)
            except Exception as exc:
                self.context.report_error(r, exc, self.name)
                continue
            placed = put_version(key, r.timestamp, value)
            if placed == DROPPED:
                self.context.metrics.incr("late_records", 1, self.name)
            elif placed == LATEST:
                if value is None:
                    delete(key)
                else:
                    put(key, value)
                out.append(r)
        self.versions.save()
        self.forward(out)
