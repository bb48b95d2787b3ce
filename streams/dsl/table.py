"""Tables: the latest value per key (Kafka Streams' KTable)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from streams.compiler.topology import Node, TopologyBuilder
from streams.dsl.stream import Stream
from streams.dsl.topic import Topic
from streams.processors.api import Processor
from streams.processors.stateful import TableFilter, TableMapValues, VersionedTableSource
from streams.serdes import Serde, SerdeLike, bind
from streams.state.spec import StoreSpec

if TYPE_CHECKING:
    from streams.dsl.grouped_table import GroupedTable
    from streams.dsl.suppress import Suppressed


class Table:
    """A changelog stream read as the latest value per key.

    store_name names the store that holds it, for app.store(name); tables made
    by filter() or map_values() are computed on the fly and have none until a
    join materializes them.  A versioned table (app.table(..., versioned=...))
    also keeps each key's history in versions_store, for history_retention ms.
    """

    def __init__(self, builder: TopologyBuilder, node: Node, store_name: str | None,
                 key_serde: Serde, value_serde: Serde, versions_store: str | None = None,
                 history_retention: int | None = None) -> None:
        self._builder = builder
        self._node = node
        self.store_name = store_name
        self.key_serde = key_serde
        self.value_serde = value_serde
        self.versions_store = versions_store
        self.history_retention = history_retention

    def _then(self, prefix: str, make: Callable[[str], Processor], name: str | None) -> Table:
        node_name = self._builder.new_name(prefix, name)
        node = self._builder.add(Node(node_name, prefix, lambda: make(node_name)), self._node)
        return Table(self._builder, node, None, self.key_serde, self.value_serde)

    def filter(self, predicate: Callable[[Any, Any], bool], name: str | None = None) -> Table:
        """Keep rows where predicate(key, value) holds; others become deletes downstream."""
        return self._then("KTABLE-FILTER", lambda n: TableFilter(n, predicate), name)

    def filter_not(self, predicate: Callable[[Any, Any], bool], name: str | None = None) -> Table:
        return self._then("KTABLE-FILTER", lambda n: TableFilter(n, predicate, keep=False), name)

    def map_values(self, fn: Callable[[Any], Any], name: str | None = None) -> Table:
        """Map every row's value; deletes pass through."""
        return self._then("KTABLE-MAPVALUES", lambda n: TableMapValues(n, fn), name)

    def join(self, other: Table, joiner: Callable[[Any, Any], Any], name: str | None = None,
             value_serde: SerdeLike = None, *, foreign_key: Callable[[Any], Any] | None = None) -> Table:
        """joiner(left_row, right_row) for keys in both tables, updated when either side changes (docs/joins.md).

        With foreign_key, each row of this table joins the row of `other` whose key is
        foreign_key(value) instead, and the tables need not be co-partitioned.
        """
        from streams.dsl.foreign_key import foreign_key_join
        from streams.dsl.joins import table_join

        if foreign_key is not None:
            return foreign_key_join(self, other, foreign_key, joiner, "inner", name, value_serde)
        return table_join(self, other, joiner, "inner", name, value_serde)

    def left_join(self, other: Table, joiner: Callable[[Any, Any], Any], name: str | None = None,
                  value_serde: SerdeLike = None, *, foreign_key: Callable[[Any], Any] | None = None) -> Table:
        """Like join(), for every key of this table; the right row is None where the other table has none."""
        from streams.dsl.foreign_key import foreign_key_join
        from streams.dsl.joins import table_join

        if foreign_key is not None:
            return foreign_key_join(self, other, foreign_key, joiner, "left", name, value_serde)
        return table_join(self, other, joiner, "left", name, value_serde)

    def outer_join(self, other: Table, joiner: Callable[[Any, Any], Any], name: str | None = None,
                   value_serde: SerdeLike = None) -> Table:
        """Like join(), for every key of either table; the missing side is None."""
        from streams.dsl.joins import table_join

        return table_join(self, other, joiner, "outer", name, value_serde)

    def group_by(self, selector: Callable[[Any, Any], tuple[Any, Any]], key_serde: SerdeLike = None,
                 value_serde: SerdeLike = None, name: str | None = None) -> GroupedTable:
        """Re-group rows by selector(key, value) -> (group key, value), through a repartition topic, for
        aggregate(initializer, adder, subtractor), count() or reduce(adder, subtractor) (docs/state.md)."""
        from streams.dsl.grouped_table import GroupedTable

        return GroupedTable(self, selector, key_serde, value_serde, name)

    def suppress(self, suppressed: Suppressed, name: str | None = None) -> Table:
        """Hold updates back per key: until_time_limit(limit, max_records=, max_bytes=, when_full=) (docs/state.md)."""
        from streams.dsl.suppress import add_suppress

        node = add_suppress(self._builder, self._node, suppressed, name, self.key_serde, self.value_serde, None)
        return Table(self._builder, node, None, self.key_serde, self.value_serde)

    def to_stream(self) -> Stream:
        """The stream of this table's updates; a delete arrives as a None value."""
        return Stream(self._builder, self._node, self.key_serde, self.value_serde)

    def to(self, topic: str | Topic, key_serde: SerdeLike = None, value_serde: SerdeLike = None,
           name: str | None = None) -> None:
        """Write every update, deletes as tombstones, to a topic."""
        self.to_stream().to(topic, key_serde=key_serde, value_serde=value_serde, name=name)


def versioned_table(builder: TopologyBuilder, source: Node, store_name: str, key_serde: Serde, value_serde: Serde,
                    retention: int) -> Table:
    """A table whose updates are kept as versions at their timestamps (docs/state.md, versioned tables).

    The latest values go to the store `store_name`, the history to `<store_name>-versions`;
    each has its own changelog, since the topic's order is not the versions' order.  Both
    hold the same bytes, serialized once with the value serde bound to the first changelog.
    """
    from streams.state.versioned import VERSIONED_KIND, VersionedStoreView

    changelog = builder.internal_topic(store_name, "changelog")
    value_serde = bind(value_serde, changelog, False)
    latest = builder.add_store(StoreSpec(store_name, key_serde, value_serde, changelog))
    versions_name = f"{store_name}-versions"
    versions = builder.add_store(StoreSpec(versions_name, key_serde, value_serde,
                                           builder.internal_topic(versions_name, "changelog"), kind=VERSIONED_KIND,
                                           options={"history_retention": retention, "view": VersionedStoreView}))
    node_name = builder.new_name("KTABLE-SOURCE")
    node = builder.add(Node(node_name, "KTABLE-SOURCE", lambda: VersionedTableSource(node_name, store_name,
                                                                                     versions_name, retention,
                                                                                     key_serde, value_serde),
                            stores=(latest, versions), params={"history_retention": retention}), source)
    return Table(builder, node, store_name, key_serde, value_serde, versions_name, retention)
