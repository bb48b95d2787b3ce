"""Stream-table lookups: each stream record reads the table's current row for its key.

The stream side drives: a table update changes what later stream records see
but emits nothing.  The result keeps the stream record's key, timestamp and
headers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streams.processors.api import Processor, StoreProcessor
from streams.record import Record
from streams.serdes import Serde
from streams.state.versioned import VersionedStore

Joiner = Callable[[Any, Any], Any]


class StreamTableJoin(StoreProcessor):
    """joiner(value, row) for each stream record; an inner join drops records without a row.

    The row is the table's row for the record's key, or, with a key_mapper (global
    tables), for key_mapper(key, value).  Without a key_mapper a record with a None
    key has no row to look up and is dropped.
    """

    def __init__(self, name: str, store_name: str, key_serde: Serde, value_serde: Serde, joiner: Joiner,
                 left: bool, key_mapper: Callable[[Any, Any], Any] | None = None) -> None:
        super().__init__(name, store_name)
        self.key_serde = key_serde
        self.value_serde = value_serde
        self.joiner = joiner
        self.left = left
        self.key_mapper = key_mapper

    def process(self, batch: list[Record]) -> None:
        get, serialize_key, deserialize = self.store.get, self.key_serde.serialize, self.value_serde.deserialize
        key_mapper, joiner, left, out = self.key_mapper, self.joiner, self.left, []
        for r in batch:
            if r.value is None or (r.key is None and key_mapper is None):
                self.context.metrics.incr("dropped_null_records", 1, self.name)
                continue
            try:
                lookup = r.key if key_mapper is None else key_mapper(r.key, r.value)
                raw = None if lookup is None else get(serialize_key(lookup))
                row = None if raw is None else deserialize(raw)
                if row is None and not left:
                    continue
                value = joiner(r.value, row)
            except Exception as exc:
                self.context.report_error(r, exc, self.name)
                continue
            out.append(Record(r.key, value, r.timestamp, r.headers, r.origin))
        self.forward(out)


class Discard(Processor):
    """Takes the table side's updates into a stream-table join and drops them.

    It exists so that the table and the join share a sub-topology (and a task, and
    the co-partitioning check); only the stream side emits.
    """

    def process(self, batch: list[Record]) -> None:
        return None


class VersionedLookupJoin(Processor):
    """joiner(value, row) with the table's row as of each stream record's timestamp (a versioned table)."""

    def __init__(self, name: str, versions_store: str, retention: int, key_serde: Serde, value_serde: Serde,
                 joiner: Joiner, left: bool) -> None:
        super().__init__(name)
        self.store_name = versions_store
        self.retention = retention
        self.key_serde = key_serde
        self.value_serde = value_serde
        self.joiner = joiner
        self.left = left
        self.versions: VersionedStore = None  # type: ignore[assignment]

    def init(self, context: Any) -> None:
        super().init(context)
        self.versions = VersionedStore.of(context.get_store(self.store_name), self.retention)

    def process(self, batch: list[Record]) -> None:
        get, serialize_key, deserialize = self.versions.get, self.key_serde.serialize, self.value_serde.deserialize
        joiner, left, out = self.joiner, self.left, []
        for r in batch:
            if r.key is None or r.value is None:
                self.context.metrics.incr("dropped_null_records", 1, self.name)
                continue
            try:
                raw = get(serialize_key(r.key), r.timestamp)
                row = None if raw is None else deserialize(raw)
                if row is None and not left:
                    continue
                value = joiner(r.value, row)
            except Exception as exc:
                self.context.report_error(r, exc, self.name)
                continue
            out.append(Record(r.key, value, r.timestamp, r.headers, r.origin))
        self.forward(out)
