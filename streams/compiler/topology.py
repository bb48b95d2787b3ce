"""The logical graph that the DSL records and the compiler splits.

A Node knows how to make its Processor (one instance per task) and which topics
and stores it touches.  Nothing here talks to Kafka.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streams.processors.api import Processor
from streams.serdes import Serde
from streams.state.spec import StoreSpec


@dataclass(eq=False)
class Node:
    name: str
    kind: str
    factory: Callable[[], Processor]
    parents: list[Node] = field(default_factory=list)
    children: list[Node] = field(default_factory=list)
    source_topics: tuple[str, ...] = ()
    sink_topic: str | None = None
    internal_topic: str | None = None
    stores: tuple[StoreSpec, ...] = ()
    branch: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    serdes: tuple[Serde, ...] = ()  # of sources and sinks, checked when a worker starts

    @property
    def is_source(self) -> bool:
        return bool(self.source_topics)


@dataclass(frozen=True)
class RepartitionTopic:
    """An internal topic written and read by the app; a follower takes the size of the topics it is
    co-partitioned with and never imposes its writer's."""

    name: str
    partitions: int | None
    follower: bool = False


class TopologyBuilder:
    """Accumulates nodes, internal topics and stores for one application."""

    def __init__(self, app_id: str) -> None:
        self.app_id = app_id
        self.nodes: list[Node] = []
        self.repartition_topics: dict[str, RepartitionTopic] = {}
        self.stores: dict[str, StoreSpec] = {}
        self.topics: dict[str, Any] = {}  # declared topics (streams.dsl.topic.Topic) by name
        self._counter = 0

    def new_name(self, prefix: str, name: str | None = None) -> str:
        index = self._counter
        self._counter += 1
        if name:
            if any(n.name == name for n in self.nodes):
                raise ValueError(f"an operator is already named {name!r}")
            return name
        return f"{prefix}-{index:010d}"

    def add(self, node: Node, *parents: Node) -> Node:
        for parent in parents:
            node.parents.append(parent)
            parent.children.append(node)
        self.nodes.append(node)
        return node

    def internal_topic(self, name: str, suffix: str) -> str:
        return f"{self.app_id}-{name}-{suffix}"

    def add_repartition_topic(self, name: str, partitions: int | None, follower: bool = False) -> str:
        topic = self.internal_topic(name, "repartition")
        if topic in self.repartition_topics:
            raise ValueError(f"repartition topic {topic!r} is already defined; give a different name")
        self.repartition_topics[topic] = RepartitionTopic(topic, partitions, follower)
        return topic

    def add_store(self, spec: StoreSpec) -> StoreSpec:
        if spec.name in self.stores:
            raise ValueError(f"a store is already named {spec.name!r}")
        self.stores[spec.name] = spec
        return spec
