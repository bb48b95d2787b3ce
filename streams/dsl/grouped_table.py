"""Tables re-grouped by a new key and aggregated with an adder and a subtractor (Kafka Streams' KGroupedTable)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from streams.compiler.topology import Node
from streams.processors.endpoints import Sink, Source
from streams.processors.grouped_table import ChangeSerde, TableAggregate, TableGroupBy, reducers_as_aggregators
from streams.serdes import SerdeLike, bind, resolve
from streams.state.spec import StoreSpec

if TYPE_CHECKING:
    from streams.dsl.table import Table


class GroupedTable:
    """A table whose rows are re-keyed by selector(key, value) -> (group key, value), ready to aggregate.

    Unlike a grouped stream, a row that changes takes back its old contribution:
    aggregations take a subtractor as well as an adder (docs/state.md).
    """

    def __init__(self, table: Table, selector: Callable[[Any, Any], Any], key_serde: SerdeLike,
                 value_serde: SerdeLike, name: str | None) -> None:
        self._table = table
        self._selector = selector
        self.key_serde = resolve(key_serde, "str") if key_serde is not None else table.key_serde
        self.value_serde = resolve(value_serde, "json") if value_serde is not None else table.value_serde
        self.name = name
        self._source: Node | None = None

    def aggregate(self, initializer: Callable[[], Any], adder: Callable[[Any, Any, Any], Any],
                  subtractor: Callable[[Any, Any, Any], Any], name: str | None = None,
                  value_serde: SerdeLike = None) -> Table:
        """adder(key, value, aggregate) for a row joining the group, subtractor(key, value, aggregate) for one
        leaving it; an update of a row subtracts its old value and adds its new one."""
        return self._aggregate("KTABLE-AGGREGATE", initializer, adder, subtractor, name, value_serde)

    def count(self, name: str | None = None) -> Table:
        """The number of rows per group."""
        return self._aggregate("KTABLE-COUNT", lambda: 0, lambda key, value, n: n + 1, lambda key, value, n: n - 1,
                               name, "json")

    def reduce(self, adder: Callable[[Any, Any], Any], subtractor: Callable[[Any, Any], Any],
               name: str | None = None, value_serde: SerdeLike = None) -> Table:
        """adder(aggregate, value) and subtractor(aggregate, value); a group's first value is its aggregate."""
        initializer, add, subtract = reducers_as_aggregators(adder, subtractor)
        return self._aggregate("KTABLE-REDUCE", initializer, add, subtract, name, value_serde)

    def _aggregate(self, prefix: str, initializer: Callable[[], Any], adder: Callable, subtractor: Callable,
                   name: str | None, value_serde: SerdeLike) -> Table:
        from streams.dsl.table import Table

        builder = self._table._builder
        store_name = name or builder.new_name(f"{prefix}-STATE-STORE")
        source = self._repartitioned(store_name)
        changelog = builder.internal_topic(store_name, "changelog")
        ks, vs = self.key_serde, bind(resolve(value_serde, "json"), changelog, False)
        spec = builder.add_store(StoreSpec(store_name, ks, vs, changelog))
        node_name = builder.new_name(prefix)
        node = builder.add(Node(node_name, prefix, lambda: TableAggregate(node_name, store_name, initializer, adder,
                                                                          subtractor, ks, vs),
                                stores=(spec,)), source)
        return Table(builder, node, store_name, ks, vs)

    def _repartitioned(self, purpose: str) -> Node:
        """The source of change pairs keyed by group, through `<app-id>-<name>-repartition`; made once and shared
        by every aggregation of this grouped table."""
        if self._source is not None:
            return self._source
        table, builder = self._table, self._table._builder
        base = self.name or purpose
        prior_name = f"{base}-prior-store"
        prior_changelog = builder.internal_topic(prior_name, "changelog")
        tks, tvs = table.key_serde, bind(table.value_serde, prior_changelog, False)
        prior = builder.add_store(StoreSpec(prior_name, tks, tvs, prior_changelog))
        select_name = builder.new_name("KTABLE-GROUPBY", f"{base}-select")
        selector = self._selector
        select = builder.add(Node(select_name, "KTABLE-GROUPBY",
                                  lambda: TableGroupBy(select_name, prior_name, selector, tks, tvs),
                                  stores=(prior,)), table._node)
        topic = builder.add_repartition_topic(base, None)
        ks, vs = bind(self.key_serde, topic, True), bind(self.value_serde, topic, False)
        changes = ChangeSerde(vs)
        sink_name = builder.new_name("KSTREAM-SINK", f"{base}-sink")
        builder.add(Node(sink_name, "KSTREAM-SINK", lambda: Sink(sink_name, topic, ks, changes),
                         sink_topic=topic, internal_topic=topic, serdes=(ks, vs)), select)
        source_name = builder.new_name("KSTREAM-SOURCE", f"{base}-source")
        self._source = builder.add(Node(source_name, "KSTREAM-SOURCE", lambda: Source(source_name, ks, changes),
                                        source_topics=(topic,), internal_topic=topic))
        return self._source
