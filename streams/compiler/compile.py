"""From the logical graph to sub-topologies, and from sub-topologies to tasks.

Compilation has two steps.  compile_topology() is structural: it cuts the graph
at repartition topics into sub-topologies (connected components of the graph
once each repartition sink is detached from its source).  plan_tasks() needs
the partition counts of the source topics from the broker: it sizes the
repartition topics, checks co-partitioning and forms one task per partition of
each sub-topology, named "<subtopology>_<partition>".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from streams.compiler.fusion import fusable_chains
from streams.compiler.topology import Node, TopologyBuilder
from streams.errors import TopologyError
from streams.serdes import Serde
from streams.state.global_store import global_specs
from streams.state.spec import StoreSpec
from streams.transport.base import TopicPartition, TopicSpec


@dataclass(eq=False)
class SubTopology:
    id: int
    nodes: list[Node]
    source_topics: list[str]
    sink_topics: list[str]
    stores: list[StoreSpec]
    copartition_groups: list[frozenset[str]] = field(default_factory=list)
    chains: list[list[Node]] = field(default_factory=list)  # fused chains of stateless operators


@dataclass(eq=False)
class CompiledTopology:
    app_id: str
    subtopologies: list[SubTopology]
    repartition_topics: dict[str, int | None]
    stores: dict[str, StoreSpec]
    declared_topics: dict[str, TopicSpec] = field(default_factory=dict)
    follower_topics: frozenset[str] = frozenset()

    @property
    def external_source_topics(self) -> list[str]:
        internal = set(self.repartition_topics)
        return sorted({t for s in self.subtopologies for t in s.source_topics if t not in internal})

    @property
    def all_source_topics(self) -> list[str]:
        return sorted({t for s in self.subtopologies for t in s.source_topics})

    def serdes(self) -> list[Serde]:
        """Every serde of a source, sink or store."""
        found = [serde for sub in self.subtopologies for node in sub.nodes for serde in node.serdes]
        found.extend(serde for spec in self.stores.values() for serde in (spec.key_serde, spec.value_serde))
        return found

    @property
    def external_sink_topics(self) -> list[str]:
        """Topics written by name (topics chosen per record are known only at run time)."""
        internal = set(self.repartition_topics)
        return sorted({t for s in self.subtopologies for t in s.sink_topics if t not in internal})

    @property
    def global_table_topics(self) -> list[str]:
        return sorted({s.options["topic"] for s in global_specs(self.stores.values())})


@dataclass(frozen=True)
class TaskPlan:
    task_id: str
    subtopology: SubTopology
    partition: int
    inputs: frozenset[TopicPartition]


@dataclass(eq=False)
class PhysicalPlan:
    """Tasks and topic sizes for one set of broker partition counts."""

    topology: CompiledTopology
    partition_counts: dict[str, int]
    tasks: dict[str, TaskPlan]
    task_of: dict[TopicPartition, str]

    def tasks_for(self, partitions: set[TopicPartition]) -> set[str]:
        return {self.task_of[tp] for tp in partitions if tp in self.task_of}


def compile_topology(builder: TopologyBuilder, fuse: bool = True) -> CompiledTopology:
    """Cut the graph into sub-topologies; with `fuse`, mark the chains of stateless operators to fuse."""
    if not any(n.is_source for n in builder.nodes):
        raise TopologyError("the topology has no source: call app.stream(...) or app.table(...) first")
    components = _components(builder.nodes)
    components.sort(key=lambda nodes: builder.nodes.index(nodes[0]))
    subtopologies = [_subtopology(i, nodes) for i, nodes in enumerate(components)]
    if fuse:
        for sub in subtopologies:
            sub.chains = fusable_chains(sub.nodes)
    _check_stores_have_one_home(subtopologies)
    return CompiledTopology(
        app_id=builder.app_id,
        subtopologies=subtopologies,
        repartition_topics={t.name: t.partitions for t in builder.repartition_topics.values()},
        stores=dict(builder.stores),
        declared_topics={name: topic.spec for name, topic in builder.topics.items()},
        follower_topics=frozenset(t.name for t in builder.repartition_topics.values() if t.follower),
    )


def _check_stores_have_one_home(subtopologies: list[SubTopology]) -> None:
    """A store is partitioned like the one sub-topology whose tasks own it (an agent table, say)."""
    homes: dict[str, list[SubTopology]] = {}
    for sub in subtopologies:
        for spec in sub.stores:
            homes.setdefault(spec.name, []).append(sub)
    for name, subs in homes.items():
        if len(subs) > 1:
            inputs = "; ".join(", ".join(s.source_topics) for s in subs)
            raise TopologyError(f"store {name!r} is used by processors that read unrelated topics ({inputs}): "
                                "a store is partitioned like its input, so all its users must read the same topics")


def _components(nodes: list[Node]) -> list[list[Node]]:
    """Connected components over parent/child edges, each in creation order.

    Sources of one topic count as connected: every reader of a topic lives in
    the one sub-topology whose tasks own the topic's partitions, and the task
    hands each batch to each of them.
    """
    order = {id(n): i for i, n in enumerate(nodes)}
    readers: dict[str, list[Node]] = {}
    for node in nodes:
        for topic in node.source_topics:
            readers.setdefault(topic, []).append(node)
    seen: set[int] = set()
    components = []
    for start in nodes:
        if id(start) in seen:
            continue
        stack, members = [start], []
        seen.add(id(start))
        while stack:
            node = stack.pop()
            members.append(node)
            peers = [peer for topic in node.source_topics for peer in readers[topic]]
            for other in (*node.parents, *node.children, *peers):
                if id(other) not in seen:
                    seen.add(id(other))
                    stack.append(other)
        members.sort(key=lambda n: order[id(n)])
        components.append(members)
    return components


def _subtopology(index: int, nodes: list[Node]) -> SubTopology:
    sources = sorted({t for n in nodes for t in n.source_topics})
    sinks = sorted({n.sink_topic for n in nodes if n.sink_topic})
    stores = list({id(s): s for n in nodes for s in n.stores}.values())  # agents may share a table
    groups = []
    for node in nodes:
        if node.stores or node.params.get("copartitioned"):
            upstream = _upstream_sources(node)
            if len(upstream) > 1:
                groups.append(frozenset(upstream))
    return SubTopology(index, nodes, sources, sinks, stores, groups)


def _upstream_sources(node: Node) -> set[str]:
    found, stack, seen = set(), [node], set()
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        found.update(current.source_topics)
        stack.extend(current.parents)
    return found


def plan_tasks(topology: CompiledTopology, source_partitions: Mapping[str, int | None]) -> PhysicalPlan:
    """Size repartition topics, check co-partitioning and form the tasks.

    source_partitions gives the broker's partition count of each external source
    topic (None if the topic does not exist).
    """
    missing = sorted(t for t in topology.external_source_topics if not source_partitions.get(t))
    if missing:
        raise TopologyError(f"source topics do not exist: {', '.join(missing)}")
    counts = {t: int(source_partitions[t]) for t in topology.external_source_topics}
    _size_repartition_topics(topology, counts)
    tasks: dict[str, TaskPlan] = {}
    task_of: dict[TopicPartition, str] = {}
    for sub in topology.subtopologies:
        _check_copartitioning(sub, counts)
        for partition in range(max(counts[t] for t in sub.source_topics)):
            task_id = f"{sub.id}_{partition}"
            inputs = frozenset(TopicPartition(t, partition) for t in sub.source_topics if partition < counts[t])
            tasks[task_id] = TaskPlan(task_id, sub, partition, inputs)
            task_of.update(dict.fromkeys(inputs, task_id))
    return PhysicalPlan(topology, counts, tasks, task_of)


def _size_repartition_topics(topology: CompiledTopology, counts: dict[str, int]) -> None:
    """A repartition topic gets its explicit size, else the widest input of its writer.

    One that is co-partitioned with others (a join input) takes their size instead:
    that of the group's source and explicitly sized topics, or if there are none,
    the widest input of any of the group's writers other than followers (the
    topics between the two sides of a foreign-key join, which only match a side).
    """
    pending = dict(topology.repartition_topics)
    writers = {t: s for s in topology.subtopologies for t in s.sink_topics if t in pending}
    groups = [g for s in topology.subtopologies for g in s.copartition_groups]

    def widest_input(topic: str) -> int | None:
        sources = writers[topic].source_topics
        return max(counts[t] for t in sources) if all(t in counts for t in sources) else None

    def size(topic: str, explicit: int | None) -> int | None:
        if explicit:
            return explicit
        partners = {t for g in groups if topic in g for t in g}
        fixed = [counts[t] if t in counts else pending[t] for t in partners
                 if t not in pending or pending[t]]
        if fixed:
            return max(fixed)
        flexible = [widest_input(t) for t in partners | {topic}
                    if t in pending and not pending[t] and t not in topology.follower_topics]
        return None if not flexible or None in flexible else max(flexible)  # type: ignore[type-var]

    for topic in pending:
        if writers.get(topic) is None:
            raise TopologyError(f"repartition topic {topic!r} has no writer")
    while pending:
        progressed = False
        for topic, explicit in list(pending.items()):
            n = size(topic, explicit)
            if n is None:
                continue
            counts[topic] = n
            del pending[topic]
            progressed = True
        if not progressed:
            raise TopologyError(f"repartition topics form a cycle: {', '.join(sorted(pending))}")


def _check_copartitioning(sub: SubTopology, counts: Mapping[str, int]) -> None:
    for group in sub.copartition_groups:
        sizes = {t: counts[t] for t in sorted(group)}
        if len(set(sizes.values())) > 1:
            listed = ", ".join(f"{t} ({n} partitions)" for t, n in sizes.items())
            raise TopologyError(
                f"topics joined or aggregated together must have the same number of partitions: {listed}"
            )
