"""The chainable DSL: a thin builder that records Nodes on the logical graph.

Every method adds one node whose factory makes the processor for each task.  A
stream remembers whether its key may have changed, so that a later grouping or
join knows it must go through a repartition topic first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from streams.compiler.topology import Node, TopologyBuilder
from streams.dsl.topic import Topic, bound_serdes, serdes_for, topic_name
from streams.processors.api import Processor
from streams.processors.endpoints import Sink, Source
from streams.processors.stateful import Aggregate, TableMaterialize, reducer_as_aggregator
from streams.processors.stateless import (
    Filter,
    FlatMap,
    FlatMapValues,
    Map,
    MapValues,
    Passthrough,
    Peek,
    SelectKey,
    Split,
)
from streams.serdes import Serde, SerdeLike, bind, resolve
from streams.state.spec import StoreSpec

if TYPE_CHECKING:
    from streams.dsl.global_table import GlobalTable
    from streams.dsl.table import Table
    from streams.dsl.windows import WindowedStream
    from streams.windows.definitions import WindowDefinition
    from streams.windows.join_windows import JoinWindows


class Stream:
    """An unbounded stream of keyed records (Kafka Streams' KStream)."""

    def __init__(self, builder: TopologyBuilder, node: Node, key_serde: Serde, value_serde: Serde,
                 key_changed: bool = False) -> None:
        self._builder = builder
        self._node = node
        self.key_serde = key_serde
        self.value_serde = value_serde
        self.key_changed = key_changed

    # -- plumbing

    def _then(self, prefix: str, make: Callable[[str], Processor], name: str | None = None,
              key_changed: bool | None = None, value_serde: Serde | None = None, new_values: bool = False,
              params: dict[str, Any] | None = None) -> Stream:
        """Add a node under this stream.

        An operator that makes new keys (key_changed) or values (new_values) drops a typed serde
        (a model type or a registry schema declares what the input holds, not what fn returns):
        the stream goes on with the default str keys and JSON values until a sink declares a type.
        """
        node_name = self._builder.new_name(prefix, name)
        node = self._builder.add(Node(node_name, prefix, lambda: make(node_name), params=dict(params or {})),
                                 self._node)
        ks = resolve("str", "str") if key_changed and _typed(self.key_serde) else self.key_serde
        vs = value_serde or (resolve("json", "json") if new_values and _typed(self.value_serde) else self.value_serde)
        return Stream(self._builder, node, ks, vs, self.key_changed if key_changed is None else key_changed)

    # -- stateless operations

    def filter(self, predicate: Callable[[Any, Any], bool], name: str | None = None) -> Stream:
        """Keep records for which predicate(key, value) is true."""
        return self._then("KSTREAM-FILTER", lambda n: Filter(n, predicate), name)

    def filter_not(self, predicate: Callable[[Any, Any], bool], name: str | None = None) -> Stream:
        """Drop records for which predicate(key, value) is true."""
        return self._then("KSTREAM-FILTER", lambda n: Filter(n, predicate, keep=False), name)

    def map(self, fn: Callable[[Any, Any], tuple[Any, Any]], name: str | None = None) -> Stream:
        """Replace each record by fn(key, value) -> (key, value); marks the key as changed."""
        return self._then("KSTREAM-MAP", lambda n: Map(n, fn), name, key_changed=True, new_values=True)

    def map_values(self, fn: Callable[[Any], Any], name: str | None = None) -> Stream:
        """Replace each value by fn(value); the key and partitioning stay."""
        return self._then("KSTREAM-MAPVALUES", lambda n: MapValues(n, fn), name, new_values=True)

    def flat_map(self, fn: Callable[[Any, Any], Iterable[tuple[Any, Any]]], name: str | None = None) -> Stream:
        """Replace each record by zero or more (key, value) pairs; marks the key as changed."""
        return self._then("KSTREAM-FLATMAP", lambda n: FlatMap(n, fn), name, key_changed=True, new_values=True)

    def flat_map_values(self, fn: Callable[[Any], Iterable[Any]], name: str | None = None) -> Stream:
        """Replace each value by zero or more values under the same key."""
        return self._then("KSTREAM-FLATMAPVALUES", lambda n: FlatMapValues(n, fn), name, new_values=True)

    def select_key(self, fn: Callable[[Any, Any], Any], name: str | None = None) -> Stream:
        """Set a new key fn(key, value); marks the key as changed."""
        return self._then("KSTREAM-KEY-SELECT", lambda n: SelectKey(n, fn), name, key_changed=True)

    def peek(self, fn: Callable[[Any, Any], Any], name: str | None = None) -> Stream:
        """Call fn(key, value) for its side effect and pass records on unchanged."""
        return self._then("KSTREAM-PEEK", lambda n: Peek(n, fn), name)

    def foreach(self, fn: Callable[[Any, Any], Any], name: str | None = None) -> None:
        """Call fn(key, value) for each record; a terminal operation."""
        self._then("KSTREAM-FOREACH", lambda n: Peek(n, fn), name)

    def split(self, branches: Mapping[str, Callable[[Any, Any], bool]], default: str | None = None,
              name: str | None = None) -> dict[str, Stream]:
        """Route each record to the first branch whose predicate holds (else to `default`)."""
        if not branches:
            raise ValueError("split() needs at least one branch")
        splitter = self._then("KSTREAM-BRANCH", lambda n: Split(n, branches, default), name)
        result = {}
        for branch in [*branches, *([default] if default else [])]:
            child = splitter._then("KSTREAM-BRANCHCHILD", Passthrough, f"{splitter._node.name}-{branch}")
            child._node.branch = branch
            result[branch] = child
        return result

    def merge(self, other: Stream, name: str | None = None) -> Stream:
        """Interleave this stream with another one."""
        if other._builder is not self._builder:
            raise ValueError("merge() needs two streams of the same app")
        node_name = self._builder.new_name("KSTREAM-MERGE", name)
        node = self._builder.add(Node(node_name, "KSTREAM-MERGE", lambda: Passthrough(node_name)),
                                 self._node, other._node)
        return Stream(self._builder, node, self.key_serde, self.value_serde,
                      self.key_changed or other.key_changed)

    def repartition(self, name: str | None = None, partitions: int | None = None,
                    key_serde: SerdeLike = None, value_serde: SerdeLike = None) -> Stream:
        """Write through an internal topic so that records are partitioned by their current key."""
        key_serde = resolve(key_serde, "str") if key_serde is not None else self.key_serde
        value_serde = resolve(value_serde, "json") if value_serde is not None else self.value_serde
        base = name or self._builder.new_name("KSTREAM-REPARTITION")
        topic = self._builder.add_repartition_topic(base, partitions)
        key_serde, value_serde = bind(key_serde, topic, True), bind(value_serde, topic, False)
        sink_name = self._builder.new_name("KSTREAM-SINK", f"{base}-sink")
        self._builder.add(Node(sink_name, "KSTREAM-SINK", lambda: Sink(sink_name, topic, key_serde, value_serde),
                               sink_topic=topic, internal_topic=topic, serdes=(key_serde, value_serde)), self._node)
        source_name = self._builder.new_name("KSTREAM-SOURCE", f"{base}-source")
        node = self._builder.add(Node(source_name, "KSTREAM-SOURCE",
                                      lambda: Source(source_name, key_serde, value_serde),
                                      source_topics=(topic,), internal_topic=topic))
        return Stream(self._builder, node, key_serde, value_serde, key_changed=False)

    def to(self, topic: str | Topic | Callable[[Any, Any], str], key_serde: SerdeLike = None,
           value_serde: SerdeLike = None, name: str | None = None, *,
           key_type: type | None = None, value_type: type | None = None) -> None:
        """Write records to a topic, or to the topic fn(key, value) names.

        Serdes: those given here (key_type / value_type declare the model type written, see App.stream),
        else the declared topic's, else the stream's.
        """
        fixed = isinstance(topic, (str, Topic))
        fallback = (self.key_serde, self.value_serde)
        if fixed:
            ks, vs = bound_serdes(self._builder.topics, topic, key_serde, value_serde, fallback, key_type=key_type,
                                  value_type=value_type)
        else:
            ks, vs = serdes_for(None, key_serde, value_serde, fallback, key_type=key_type, value_type=value_type)
        target = topic_name(topic) if fixed else topic
        node_name = self._builder.new_name("KSTREAM-SINK", name)
        self._builder.add(Node(node_name, "KSTREAM-SINK", lambda: Sink(node_name, target, ks, vs),
                               sink_topic=target if fixed else None,
                               params={"dynamic_topic": not fixed}, serdes=(ks, vs)), self._node)

    def process(self, processor: Callable[[], Processor], stores: Iterable[str] = (), *,
                store_key_serde: SerdeLike = None, store_value_serde: SerdeLike = "json",
                value_serde: SerdeLike = None, name: str | None = None) -> Stream:
        """Run a custom Processor (Kafka Streams' process()): what it forward()s continues downstream.

        `processor` makes one Processor per task.  Each name in `stores` becomes a
        key-value store of that task, backed by a changelog topic, restored and
        committed like the DSL's own stores; the processor reaches it with
        self.context.get_store(name) and reads and writes bytes (serialize with the
        stream's serdes).  punctuate(wall_clock_ms) is called on every commit
        interval.  The key may change, so a later grouping repartitions.
        store_key_serde / store_value_serde tell app.store(name) how to decode the rows.
        """
        if not callable(processor):
            raise TypeError(f"process() needs a callable that returns a Processor, got {type(processor).__name__}")
        builder = self._builder
        node_name = builder.new_name("KSTREAM-PROCESSOR", name)
        sks = resolve(store_key_serde, "str") if store_key_serde is not None else self.key_serde
        svs = resolve(store_value_serde, "json")
        specs = tuple(builder.add_store(StoreSpec(store, sks, svs, builder.internal_topic(store, "changelog")))
                      for store in stores)

        def make() -> Processor:
            made = processor()
            if not isinstance(made, Processor):
                raise TypeError(f"the processor factory of {node_name} returned {type(made).__name__}, "
                                "not a streams.Processor")
            made.name = node_name
            return made

        node = builder.add(Node(node_name, "KSTREAM-PROCESSOR", make, stores=specs), self._node)
        vs = resolve(value_serde, "json") if value_serde is not None else self.value_serde
        return Stream(builder, node, self.key_serde, vs, key_changed=True)

    def to_table(self, name: str | None = None, value_serde: SerdeLike = None) -> Table:
        """The stream read as a table: each record upserts its key, a None value deletes it.

        The table is kept in the store `name` (changelogged); a stream whose key was
        changed upstream is repartitioned by its key first, so the table can be joined
        with others of the same key.
        """
        from streams.dsl.table import Table

        builder = self._builder
        store_name = name or builder.new_name("KSTREAM-TOTABLE-STATE-STORE")
        keyed = self.repartition(name=store_name) if self.key_changed else self
        changelog = builder.internal_topic(store_name, "changelog")
        ks = keyed.key_serde
        vs = bind(resolve(value_serde, "json") if value_serde is not None else keyed.value_serde, changelog, False)
        spec = builder.add_store(StoreSpec(store_name, ks, vs, changelog))
        node_name = builder.new_name("KSTREAM-TOTABLE")
        node = builder.add(Node(node_name, "KSTREAM-TOTABLE", lambda: TableMaterialize(node_name, store_name, ks, vs),
                                stores=(spec,)), keyed._node)
        return Table(builder, node, store_name, ks, vs)

    # -- grouping

    def group_by(self, fn: Callable[[Any, Any], Any], key_serde: SerdeLike = None,
                 value_serde: SerdeLike = None, name: str | None = None) -> GroupedStream:
        """Group by a new key fn(key, value); aggregations repartition by it."""
        keyed = self.select_key(fn, name=f"{name}-key-select" if name else None)
        return GroupedStream(keyed, key_serde, value_serde, name, repartition=True)

    def group_by_key(self, key_serde: SerdeLike = None, value_serde: SerdeLike = None,
                     name: str | None = None) -> GroupedStream:
        """Group by the current key; repartitions only if the key was changed upstream."""
        return GroupedStream(self, key_serde, value_serde, name, repartition=self.key_changed)

    # -- joins (streams/joins, docs/joins.md)

    def join(self, other: Stream | Table | GlobalTable, fn: Callable, joiner: Callable | None = None, *,
             window: JoinWindows | None = None, name: str | None = None, value_serde: SerdeLike = None) -> Stream:
        """Inner join: with a Table, fn is joiner(value, row); with a GlobalTable, fn is key_mapper(key, value)
        and joiner(value, row) follows; with a Stream, fn is joiner(left, right) within window."""
        from streams.dsl.joins import stream_join

        return stream_join(self, other, fn, joiner, "inner", window, name, value_serde)

    def left_join(self, other: Stream | Table | GlobalTable, fn: Callable, joiner: Callable | None = None, *,
                  window: JoinWindows | None = None, name: str | None = None, value_serde: SerdeLike = None,
                  close_on_wall_clock: bool = False) -> Stream:
        """Like join(), but a record with no match still emits, with None for the other side.

        close_on_wall_clock (windowed joins): emit an unmatched record once its window plus grace
        has passed in wall-clock time while its partition is quiet (docs/joins.md).
        """
        from streams.dsl.joins import stream_join

        return stream_join(self, other, fn, joiner, "left", window, name, value_serde, close_on_wall_clock)

    def outer_join(self, other: Stream, joiner: Callable, *, window: JoinWindows, name: str | None = None,
                   value_serde: SerdeLike = None, close_on_wall_clock: bool = False) -> Stream:
        """Windowed stream-stream join where unmatched records of either side emit, with None for the other."""
        from streams.dsl.joins import stream_join

        return stream_join(self, other, joiner, None, "outer", window, name, value_serde, close_on_wall_clock)

    @property
    def node_name(self) -> str:
        return self._node.name


def _typed(serde: Serde) -> bool:
    """A serde that declares a type or schema: a ModelSerde or a schema-registry serde."""
    return bool(getattr(serde, "typed", False))


class GroupedStream:
    """A stream grouped by key, ready for aggregation (Kafka Streams' KGroupedStream)."""

    def __init__(self, stream: Stream, key_serde: SerdeLike, value_serde: SerdeLike, name: str | None,
                 repartition: bool) -> None:
        self.key_serde = resolve(key_serde, "str") if key_serde is not None else stream.key_serde
        self.value_serde = resolve(value_serde, "json") if value_serde is not None else stream.value_serde
        self.name = name
        self.repartition_required = repartition
        self._stream = stream
        self._repartitioned: Stream | None = None

    def aggregate(self, initializer: Callable[[], Any], aggregator: Callable[[Any, Any, Any], Any],
                  name: str | None = None, value_serde: SerdeLike = None) -> Table:
        """aggregator(key, value, aggregate) -> new aggregate, starting from initializer(), per key."""
        return self._aggregate("KSTREAM-AGGREGATE", initializer, aggregator, name, value_serde)

    def count(self, name: str | None = None) -> Table:
        """The number of records per key."""
        return self._aggregate("KSTREAM-COUNT", lambda: 0, lambda key, value, n: n + 1, name, "json")

    def reduce(self, reducer: Callable[[Any, Any], Any], name: str | None = None,
               value_serde: SerdeLike = None) -> Table:
        """reducer(aggregate, value) -> new aggregate; the first value of a key is its aggregate."""
        initializer, aggregator = reducer_as_aggregator(reducer)
        return self._aggregate("KSTREAM-REDUCE", initializer, aggregator, name, value_serde)

    def _aggregate(self, prefix: str, initializer: Callable[[], Any], aggregator: Callable, name: str | None,
                   value_serde: SerdeLike) -> Table:
        from streams.dsl.table import Table

        builder = self._stream._builder
        store_name = name or builder.new_name(f"{prefix}-STATE-STORE")
        keyed = self.keyed_stream(store_name)
        changelog = builder.internal_topic(store_name, "changelog")
        vs = bind(resolve(value_serde, "json"), changelog, False)
        ks = bind(self.key_serde, changelog, True)
        spec = builder.add_store(StoreSpec(store_name, ks, vs, changelog))
        node_name = builder.new_name(prefix)
        node = builder.add(Node(node_name, prefix,
                                lambda: Aggregate(node_name, store_name, initializer, aggregator, ks, vs),
                                stores=(spec,)), keyed._node)
        return Table(builder, node, store_name, ks, vs)

    def window(self, window: WindowDefinition) -> WindowedStream:
        """Aggregate per window: Tumbling, Hopping, Sliding or Session from the windows package."""
        from streams.dsl.windows import WindowedStream

        return WindowedStream(self, window)

    def keyed_stream(self, purpose: str) -> Stream:
        """The stream co-partitioned by the grouping key, through a repartition topic if needed.

        Aggregations of one grouped stream share a single repartition topic.
        """
        if not self.repartition_required:
            return self._stream
        if self._repartitioned is None:
            self._repartitioned = self._stream.repartition(name=self.name or purpose, key_serde=self.key_serde,
                                                           value_serde=self.value_serde)
        return self._repartitioned
