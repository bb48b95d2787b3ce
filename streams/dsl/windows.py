"""The windowed DSL: GroupedStream.window(w) -> WindowedStream -> count/reduce/aggregate -> WindowedTable."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from streams.compiler.topology import Node, TopologyBuilder
from streams.dsl.stream import Stream
from streams.processors.stateful import reducer_as_aggregator
from streams.processors.windowed.aggregate import Merger, TimeWindowAggregate, WindowAggregate
from streams.processors.windowed.session import SessionWindowAggregate
from streams.processors.windowed.sliding import SlidingWindowAggregate
from streams.serdes import Serde, SerdeLike, bind, resolve
from streams.state.spec import StoreSpec
from streams.windows.definitions import Duration, WindowDefinition, to_ms
from streams.windows.query import WindowStoreView
from streams.windows.serde import WindowedJsonSerde
from streams.windows.store import with_index

if TYPE_CHECKING:
    from streams.dsl.stream import GroupedStream
    from streams.dsl.suppress import Suppressed

EMIT_MODES = ("update", "final")

CHANGELOG_EXTRA_RETENTION_MS = 24 * 3600 * 1000
"""Added to a windowed changelog's retention.ms: the broker ages records by wall-clock time, not event time."""

_PROCESSORS: dict[str, type[WindowAggregate]] = {
    "time": TimeWindowAggregate,
    "sliding": SlidingWindowAggregate,
    "session": SessionWindowAggregate,
}


class WindowedStream:
    """A grouped stream cut into windows, ready for aggregation.

    Every aggregation takes emit="update" (each change of a window is emitted)
    or emit="final" (one result per window, once stream time passes its close);
    retention (how long closed windows stay queryable, never less than the
    window kind needs); and, with emit="final", idle_close: a wall-clock idle
    period after which a partition that receives nothing closes all its open
    windows.
    """

    def __init__(self, grouped: GroupedStream, window: WindowDefinition) -> None:
        if not isinstance(window, WindowDefinition):
            raise TypeError(f"window() needs Tumbling, Hopping, Sliding or Session, got {window!r}")
        self._grouped = grouped
        self.window = window

    def count(self, name: str | None = None, *, emit: str = "update", retention: Duration | None = None,
              idle_close: Duration | None = None) -> WindowedTable:
        """The number of records per key and window."""
        return self._aggregate("KSTREAM-WINDOWED-COUNT", lambda: 0, lambda key, value, n: n + 1,
                               lambda key, a, b: a + b, name, "json", emit, retention, idle_close)

    def reduce(self, reducer: Callable[[Any, Any], Any], name: str | None = None, *, value_serde: SerdeLike = None,
               emit: str = "update", retention: Duration | None = None,
               idle_close: Duration | None = None) -> WindowedTable:
        """reducer(aggregate, value) per window; sessions merge with reducer(older, newer) too."""
        initializer, aggregator = reducer_as_aggregator(reducer)
        return self._aggregate("KSTREAM-WINDOWED-REDUCE", initializer, aggregator,
                               lambda key, a, b: aggregator(key, b, a), name, value_serde, emit, retention,
                               idle_close)

    def aggregate(self, initializer: Callable[[], Any], aggregator: Callable[[Any, Any, Any], Any],
                  name: str | None = None, *, merger: Merger | None = None, value_serde: SerdeLike = None,
                  emit: str = "update", retention: Duration | None = None,
                  idle_close: Duration | None = None) -> WindowedTable:
        """aggregator(key, value, aggregate) per window from initializer(); sessions need merger(key, a, b)."""
        if self.window.kind == "session" and merger is None:
            raise ValueError("aggregate() over sessions needs merger(key, aggregate1, aggregate2)")
        return self._aggregate("KSTREAM-WINDOWED-AGGREGATE", initializer, aggregator, merger, name, value_serde,
                               emit, retention, idle_close)

    def _aggregate(self, prefix: str, initializer: Callable[[], Any], aggregator: Callable, merger: Merger | None,
                   name: str | None, value_serde: SerdeLike, emit: str, retention: Duration | None,
                   idle_close: Duration | None) -> WindowedTable:
        if emit not in EMIT_MODES:
            raise ValueError(f"emit must be one of {EMIT_MODES}, got {emit!r}")
        window = self.window
        retention_ms = window.min_retention if retention is None else to_ms(retention, "retention")
        if retention_ms < window.min_retention:
            raise ValueError(f"retention of {retention_ms} ms is below the {window.min_retention} ms that {window!r} "
                             "needs")
        idle_ms = None if idle_close is None else to_ms(idle_close, "idle_close")
        if idle_ms is not None and emit != "final":
            raise ValueError('idle_close only applies to emit="final"')

        grouped = self._grouped
        builder = grouped._stream._builder
        store_name = name or builder.new_name(f"{prefix}-STATE-STORE")
        keyed = grouped.keyed_stream(store_name)
        changelog = builder.internal_topic(store_name, "changelog")
        ks, vs = bind(grouped.key_serde, changelog, True), bind(resolve(value_serde, "json"), changelog, False)
        topic_config = {"retention.ms": str(retention_ms + CHANGELOG_EXTRA_RETENTION_MS)}
        spec = builder.add_store(StoreSpec(
            store_name, ks, vs, changelog, kind="window",
            options={"cleanup.policy": "compact,delete", "topic_config": topic_config, "window": window,
                     "view": WindowStoreView, "derive": with_index}))
        node_name = builder.new_name(prefix)
        processor = _PROCESSORS[window.kind]

        def make() -> WindowAggregate:
            return processor(node_name, store_name, window, initializer, aggregator, ks, vs, emit=emit,
                             retention=retention_ms, idle_close=idle_ms, merger=merger)

        node = builder.add(Node(node_name, prefix, make, stores=(spec,),
                                params={"window": repr(window), "emit": emit}), keyed._node)
        return WindowedTable(builder, node, store_name, ks, vs, window)


class WindowedTable:
    """Per-key, per-window aggregates; the key of each row is Windowed(key, start, end).

    Results leave with WindowedJsonSerde keys, {"key", "start", "end"}, placed in
    the partition of the inner key (docs/windows.md).
    """

    def __init__(self, builder: TopologyBuilder, node: Node, store_name: str, key_serde: Serde,
                 value_serde: Serde, window: WindowDefinition) -> None:
        self._builder = builder
        self._node = node
        self.store_name = store_name
        self.key_serde = WindowedJsonSerde(key_serde)
        self.value_serde = value_serde
        self.window = window

    def suppress(self, suppressed: Suppressed, name: str | None = None) -> WindowedTable:
        """Hold results back: until_window_closes() emits each window's final result once (as emit="final");
        until_time_limit(...) rate-limits the updates of each window (docs/windows.md).

        Queries of the aggregation's store (app.store(store_name)) still read the windows as they are now.
        """
        from streams.dsl.suppress import add_suppress

        node = add_suppress(self._builder, self._node, suppressed, name, self.key_serde, self.value_serde,
                            self.window)
        return WindowedTable(self._builder, node, self.store_name, self.key_serde.inner, self.value_serde,
                             self.window)

    def to_stream(self) -> Stream:
        """The stream of emitted results; in update mode a session merged away arrives as a None value."""
        return Stream(self._builder, self._node, self.key_serde, self.value_serde)

    def to(self, topic: str, key_serde: SerdeLike = None, value_serde: SerdeLike = None,
           name: str | None = None) -> None:
        """Write the results to a topic; keys by default are JSON {"key", "start", "end"}, or pass
        key_serde=WindowedSerde(inner) for the inner key's bytes followed by start and end."""
        self.to_stream().to(topic, key_serde=key_serde, value_serde=value_serde, name=name)
