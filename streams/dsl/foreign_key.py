"""Foreign-key table-table joins in the topology: both tables' sides and the two topics between them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from streams.compiler.topology import Node
from streams.dsl.joins import WORD, Joiner, materialized
from streams.processors.endpoints import Sink, Source
from streams.processors.joins.foreign_key import LeftSubscriber, ResponseJoin, RightUpdates, SubscriptionStore
from streams.processors.stateless import Passthrough
from streams.serdes import BytesSerde, SerdeLike, bind, resolve
from streams.state.spec import StoreSpec

if TYPE_CHECKING:
    from streams.dsl.table import Table


def foreign_key_join(left: Table, right: Table, foreign_key: Callable[[Any], Any], joiner: Joiner, kind: str,
                     name: str | None, value_serde: SerdeLike) -> Table:
    """table.join(other, joiner, foreign_key=...): each left row joins the right row of key foreign_key(value).

    The left table's task sends subscriptions to `<app-id>-<name>-subscription-repartition`,
    co-partitioned with the right table; the right table's task answers on
    `<app-id>-<name>-response-repartition`, co-partitioned with the left table
    (streams/processors/joins/foreign_key.py).
    """
    from streams.dsl.table import Table

    if kind == "outer":
        raise TypeError("a foreign-key join is inner or left: a right row alone has no left key to emit under")
    if not isinstance(right, Table):
        raise TypeError(f"a foreign-key join joins another Table, got {right!r}")
    if right._builder is not left._builder:
        raise ValueError("a join needs two inputs of the same app")
    if not callable(foreign_key):
        raise TypeError(f"foreign_key must be a function of the left value, got {foreign_key!r}")
    builder = left._builder
    prefix = f"KTABLE-FK-{WORD[kind]}"
    join_name = builder.new_name(prefix, name)
    right_node, right_store = materialized(right, f"{join_name}-right")
    raw = BytesSerde()
    left_store, subscriptions_store = f"{join_name}-left-store", f"{join_name}-subscriptions-store"
    left_changelog = builder.internal_topic(left_store, "changelog")
    ks, lvs = left.key_serde, bind(left.value_serde, left_changelog, False)
    left_spec = builder.add_store(StoreSpec(left_store, ks, lvs, left_changelog))
    subscriptions_spec = builder.add_store(StoreSpec(subscriptions_store, raw, raw,
                                                     builder.internal_topic(subscriptions_store, "changelog")))
    subscription_topic = builder.add_repartition_topic(f"{join_name}-subscription", None, follower=True)
    response_topic = builder.add_repartition_topic(f"{join_name}-response", None, follower=True)
    left_join = kind == "left"
    rks, rvs = right.key_serde, right.value_serde

    def node(suffix: str, kind_name: str, make: Callable[[str], Any], *parents: Node, **options: Any) -> Node:
        node_name = builder.new_name(kind_name, f"{join_name}-{suffix}")
        return builder.add(Node(node_name, kind_name, lambda: make(node_name), **options), *parents)

    # The left table's side: subscriptions out, responses in, results.
    sink_name = builder.new_name("KSTREAM-SINK", f"{join_name}-subscription-sink")
    subscriber = node("subscribe", "KTABLE-FK-SUBSCRIBE",
                      lambda n: LeftSubscriber(n, left_store, foreign_key, left_join, ks, lvs, rks, joiner, sink_name),
                      left._node, stores=(left_spec,))
    builder.add(Node(sink_name, "KSTREAM-SINK", lambda: Sink(sink_name, subscription_topic, raw, raw),
                     sink_topic=subscription_topic, internal_topic=subscription_topic), subscriber)
    responses = node("response-source", "KSTREAM-SOURCE", lambda n: Source(n, raw, raw),
                     source_topics=(response_topic,), internal_topic=response_topic)
    joined = node("response-join", "KTABLE-FK-RESPONSE",
                  lambda n: ResponseJoin(n, left_store, left_join, ks, lvs, rvs, joiner), responses)
    result = builder.add(Node(join_name, prefix, lambda: Passthrough(join_name), params={"copartitioned": True}),
                         subscriber, joined)

    # The right table's side: subscriptions in, responses out.
    incoming = node("subscription-source", "KSTREAM-SOURCE", lambda n: Source(n, raw, raw),
                    source_topics=(subscription_topic,), internal_topic=subscription_topic)
    registered = node("subscriptions", "KTABLE-FK-SUBSCRIPTIONS",
                      lambda n: SubscriptionStore(n, subscriptions_store, right_store), incoming,
                      stores=(subscriptions_spec,))
    updates = node("right-updates", "KTABLE-FK-RIGHT-UPDATES",
                   lambda n: RightUpdates(n, subscriptions_store, rks, rvs), right_node)
    answers = node("answers", "KTABLE-FK-ANSWERS", Passthrough, registered, updates,
                   params={"copartitioned": True})
    response_sink = builder.new_name("KSTREAM-SINK", f"{join_name}-response-sink")
    builder.add(Node(response_sink, "KSTREAM-SINK", lambda: Sink(response_sink, response_topic, raw, raw),
                     sink_topic=response_topic, internal_topic=response_topic), answers)
    return Table(builder, result, None, ks, resolve(value_serde, "json"))
