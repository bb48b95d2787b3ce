"""Building joins into the topology: the nodes, stores and repartitioning each join kind needs.

Every join ends in a node marked "copartitioned", so the compiler puts both
inputs in one sub-topology and checks that their source topics have the same
number of partitions (a global table is not a node and needs neither).  A
stream whose key was changed upstream goes through a repartition topic first,
sized by the compiler to match the other side.  Those nodes are also marked
"time_ordered": what a join emits depends on the order its inputs interleave,
so its task processes them in timestamp order, as Kafka Streams' tasks do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from streams.compiler.topology import Node, TopologyBuilder
from streams.dsl.global_table import GlobalTable
from streams.dsl.stream import Stream
from streams.processors.joins.stream_stream import StreamJoinSide, StrictJoinSide
from streams.processors.joins.stream_table import Discard, StreamTableJoin, VersionedLookupJoin
from streams.processors.joins.table_table import KINDS, TableJoinSide
from streams.processors.joins.wall_clock import WallClockClose
from streams.processors.stateful import TableMaterialize
from streams.processors.stateless import Passthrough
from streams.serdes import Serde, SerdeLike, resolve
from streams.state.spec import StoreSpec
from streams.windows.join_windows import JoinWindows

if TYPE_CHECKING:
    from streams.dsl.table import Table

Joiner = Callable[[Any, Any], Any]
WORD = {"inner": "JOIN", "left": "LEFTJOIN", "outer": "OUTERJOIN"}
JOIN_STORE_KIND = "join-window"


def stream_join(stream: Stream, other: Any, fn: Callable, joiner: Joiner | None, kind: str,
                window: JoinWindows | None, name: str | None, value_serde: SerdeLike,
                close_on_wall_clock: bool = False) -> Stream:
    """stream.join / left_join / outer_join, by the kind of `other`."""
    from streams.dsl.table import Table

    if kind not in KINDS:
        raise ValueError(f"join kind must be one of {KINDS}, got {kind!r}")
    if close_on_wall_clock and not isinstance(other, Stream):
        raise TypeError("close_on_wall_clock applies to windowed joins of two streams only")
    if getattr(other, "_builder", None) is not stream._builder:
        raise ValueError("a join needs two inputs of the same app")
    if kind == "outer" and isinstance(other, (Table, GlobalTable)):
        raise TypeError("a join of a stream with a table is inner or left: the table side emits nothing on its own")
    if isinstance(other, GlobalTable):
        if joiner is None:
            raise TypeError("joining a global table needs key_mapper(key, value) and joiner(value, row)")
        _no_window(window, "a global table")
        return _stream_global(stream, other, fn, joiner, kind, name, value_serde)
    if joiner is not None:
        raise TypeError("join() takes a key mapper only for a global table; pass joiner(left, right) alone")
    if isinstance(other, Table):
        _no_window(window, "a table")
        return _stream_table(stream, other, fn, kind, name, value_serde)
    if isinstance(other, Stream):
        if not isinstance(window, JoinWindows):
            raise TypeError("joining two streams needs window=JoinWindows(before, after, grace)")
        return _stream_stream(stream, other, fn, kind, window, name, value_serde, close_on_wall_clock)
    raise TypeError(f"cannot join a stream with {other!r}: use a Stream, a Table or a GlobalTable")


def _no_window(window: JoinWindows | None, what: str) -> None:
    if window is not None:
        raise TypeError(f"a join with {what} has no window: a lookup sees the current row")


def _stream_table(stream: Stream, table: Table, joiner: Joiner, kind: str, name: str | None,
                  value_serde: SerdeLike) -> Stream:
    builder = stream._builder
    prefix = f"KSTREAM-{WORD[kind]}"
    join_name = builder.new_name(prefix, name)
    keyed = _keyed(stream, join_name)
    ks, vs, left = table.key_serde, table.value_serde, kind == "left"
    if table.versions_store is not None:
        return _stream_versioned(keyed, table, joiner, left, join_name, prefix, value_serde)
    table_node, store_name = materialized(table, f"{join_name}-table")
    anchor_name = builder.new_name("KTABLE-LOOKUP", f"{join_name}-lookup")
    anchor = builder.add(Node(anchor_name, "KTABLE-LOOKUP", lambda: Discard(anchor_name)), table_node)
    node = builder.add(Node(join_name, prefix, lambda: StreamTableJoin(join_name, store_name, ks, vs, joiner, left),
                            params={"copartitioned": True, "time_ordered": True, "table": store_name}),
                            keyed._node, anchor)
    return Stream(builder, node, keyed.key_serde, resolve(value_serde, "json"))


def _stream_versioned(keyed: Stream, table: Table, joiner: Joiner, left: bool, join_name: str, prefix: str,
                      value_serde: SerdeLike) -> Stream:
    """A temporal lookup: the table's row as of each stream record's timestamp.

    The task processes its partitions in timestamp order ("time_ordered"), so table
    updates up to a stream record's time are in the history when it is looked up.
    """
    builder = keyed._builder
    anchor_name = builder.new_name("KTABLE-LOOKUP", f"{join_name}-lookup")
    anchor = builder.add(Node(anchor_name, "KTABLE-LOOKUP", lambda: Discard(anchor_name)), table._node)
    ks, vs, versions, retention = table.key_serde, table.value_serde, table.versions_store, table.history_retention

    def make() -> VersionedLookupJoin:
        return VersionedLookupJoin(join_name, versions, retention, ks, vs, joiner, left)

    node = builder.add(Node(join_name, prefix, make, params={"copartitioned": True, "table": versions,
                                                              "time_ordered": True}), keyed._node, anchor)
    return Stream(builder, node, keyed.key_serde, resolve(value_serde, "json"))


def _stream_global(stream: Stream, table: GlobalTable, key_mapper: Callable[[Any, Any], Any], joiner: Joiner,
                   kind: str, name: str | None, value_serde: SerdeLike) -> Stream:
    prefix = f"KSTREAM-GLOBAL-{WORD[kind]}"
    ks, vs, store_name, left = table.key_serde, table.value_serde, table.store_name, kind == "left"

    def make(node_name: str) -> StreamTableJoin:
        return StreamTableJoin(node_name, store_name, ks, vs, joiner, left, key_mapper)

    return stream._then(prefix, make, name, value_serde=resolve(value_serde, "json"),
                        params={"global_table": store_name})


def _stream_stream(left: Stream, right: Stream, joiner: Joiner, kind: str, window: JoinWindows, name: str | None,
                   value_serde: SerdeLike, close_on_wall_clock: bool = False) -> Stream:
    builder = left._builder
    prefix = f"KSTREAM-{WORD[kind]}"
    join_name = builder.new_name(prefix, name)
    same = right is left
    left = _keyed(left, f"{join_name}-left")
    right = left if same else _keyed(right, f"{join_name}-right")
    ks, left_vs, right_vs = left.key_serde, left.value_serde, right.value_serde
    stores = []
    for side, serde in (("left", left_vs), ("right", right_vs)):
        store_name = f"{join_name}-{side}-store"
        changelog = builder.internal_topic(store_name, "changelog")
        stores.append(builder.add_store(StoreSpec(store_name, ks, serde, changelog, kind=JOIN_STORE_KIND,
                                                  options={"window": window})))
    left_store, right_store = (s.name for s in stores)
    sides = []
    for (is_left, upstream, spec) in ((True, left, stores[0]), (False, right, stores[1])):
        side_name = builder.new_name(f"{prefix}-SIDE", f"{join_name}-{'left' if is_left else 'right'}")

        def make(side_name: str = side_name, is_left: bool = is_left) -> StreamJoinSide:
            side = StreamJoinSide if window.late == "join" else StrictJoinSide
            return side(side_name, is_left, kind, window, left_store, right_store, ks, left_vs, right_vs, joiner)

        sides.append(builder.add(Node(side_name, f"{prefix}-{'THIS' if is_left else 'OTHER'}", make, stores=(spec,),
                                      params={"window": repr(window)}), upstream._node))
    if close_on_wall_clock:
        sides.append(_wall_clock_close(builder, join_name, kind, window, left_store, right_store, ks, left_vs,
                                       right_vs, joiner))
    node = builder.add(Node(join_name, prefix, lambda: Passthrough(join_name),
                            params={"copartitioned": True, "time_ordered": True, "window": repr(window)}), *sides)
    return Stream(builder, node, ks, resolve(value_serde, "json"))


def _wall_clock_close(builder: TopologyBuilder, join_name: str, kind: str, window: JoinWindows, left_store: str,
                      right_store: str, ks: Serde, left_vs: Serde, right_vs: Serde, joiner: Joiner) -> Node:
    """A node with no input that emits unmatched records on wall-clock time (processors/joins/wall_clock.py)."""
    node_name = builder.new_name("KSTREAM-JOIN-WALLCLOCK", f"{join_name}-wall-clock")

    def make() -> WallClockClose:
        return WallClockClose(node_name, kind, window, left_store, right_store, ks, left_vs, right_vs, joiner)

    return builder.add(Node(node_name, "KSTREAM-JOIN-WALLCLOCK", make))


def table_join(left: Table, right: Table, joiner: Joiner, kind: str, name: str | None,
               value_serde: SerdeLike) -> Table:
    """table.join / left_join / outer_join: a table whose rows follow both sides."""
    from streams.dsl.table import Table

    if kind not in KINDS:
        raise ValueError(f"join kind must be one of {KINDS}, got {kind!r}")
    if not isinstance(right, Table):
        raise TypeError(f"a table joins another Table, got {right!r}; to join a stream, call stream.join(table)")
    if right._builder is not left._builder:
        raise ValueError("a join needs two inputs of the same app")
    builder = left._builder
    prefix = f"KTABLE-{WORD[kind]}"
    join_name = builder.new_name(prefix, name)
    left_node, left_store = materialized(left, f"{join_name}-left")
    right_node, right_store = materialized(right, f"{join_name}-right")
    ks = left.key_serde
    times_name = f"{join_name}-times-store"
    times = builder.add_store(StoreSpec(times_name, resolve("bytes", "bytes"), resolve("bytes", "bytes"),
                                        builder.internal_topic(times_name, "changelog")))
    sides = []
    for is_left, upstream, other_store, other_serde in ((True, left_node, right_store, right.value_serde),
                                                        (False, right_node, left_store, left.value_serde)):
        side_name = builder.new_name(f"{prefix}-SIDE", f"{join_name}-{'left' if is_left else 'right'}")

        def make(side_name: str = side_name, is_left: bool = is_left, other_store: str = other_store,
                 other_serde: Any = other_serde) -> TableJoinSide:
            return TableJoinSide(side_name, kind, is_left, other_store, times_name, ks, other_serde, joiner)

        sides.append(builder.add(Node(side_name, f"{prefix}-{'THIS' if is_left else 'OTHER'}", make,
                                      stores=(times,) if is_left else ()), upstream))
    node = builder.add(Node(join_name, prefix, lambda: Passthrough(join_name),
                            params={"copartitioned": True, "time_ordered": True}), *sides)
    return Table(builder, node, None, ks, resolve(value_serde, "json"))


def materialized(table: Table, purpose: str) -> tuple[Node, str]:
    """The node and store holding the table's rows; a computed table gets a store here, once.

    The Table object is updated in place, so later joins and app.store(table.store_name)
    use the same store.
    """
    if table.store_name is not None:
        return table._node, table.store_name
    builder = table._builder
    store_name = f"{purpose}-store"
    spec = builder.add_store(StoreSpec(store_name, table.key_serde, table.value_serde,
                                       builder.internal_topic(store_name, "changelog")))
    node_name = builder.new_name("KTABLE-MATERIALIZE", f"{purpose}-materialize")
    ks, vs = table.key_serde, table.value_serde
    node = builder.add(Node(node_name, "KTABLE-MATERIALIZE", lambda: TableMaterialize(node_name, store_name, ks, vs),
                            stores=(spec,)), table._node)
    table._node, table.store_name = node, store_name
    return node, store_name


def _keyed(stream: Stream, purpose: str) -> Stream:
    """The stream itself, or, if its key was changed upstream, the stream through a repartition topic."""
    return stream.repartition(name=purpose) if stream.key_changed else stream
