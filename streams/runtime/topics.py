"""The topics an application needs: declared ones to create, used ones that must exist, internal ones.

A worker creates the declared topics that are missing before anything else,
checks that every topic it reads or writes by name exists, then sizes and
creates the internal topics (repartition, changelog, dead letters).
topic_uses() reports all of them with the partitions expected and found, for
`streams topics`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from streams.compiler.compile import CompiledTopology, PhysicalPlan, plan_tasks
from streams.errors import StateLostError, TopologyError
from streams.transport.base import Admin, TopicInfo, TopicSpec

DLQ_PARTITIONS = 1
ANY_TIME = (1 << 63) - 1
"""message.timestamp.after.max.ms of a topic that takes any timestamp (Kafka 4 defaults to an hour)."""


def internal_topic_specs(topology: CompiledTopology, plan: PhysicalPlan) -> list[TopicSpec]:
    """The repartition topics and changelogs: the internal topics whose loss loses data."""
    any_time = {"message.timestamp.after.max.ms": str(ANY_TIME)}  # they carry the inputs' times
    specs = [TopicSpec(t, plan.partition_counts[t], config=dict(any_time)) for t in sorted(topology.repartition_topics)]
    specs.extend(changelog_specs(topology, plan))
    return specs


def lost_state_error(app_id: str, missing: list[str], situation: str) -> StateLostError:
    """The error for internal topics holding state that are gone, with what to do about it."""
    return StateLostError(
        f"application {app_id!r}: internal topics missing: {', '.join(missing)}; {situation}. The state they held "
        "is gone, and recreating them empty would silently start that state from nothing",
        hint="stop every worker and run `streams rebuild <module:app>`: it replays the input topics from the start "
             "to rebuild the state, and produces the outputs again")


def changelog_specs(topology: CompiledTopology, plan: PhysicalPlan) -> list[TopicSpec]:
    """One compacted changelog per store, one partition per task of its sub-topology."""
    specs = []
    for sub in topology.subtopologies:
        tasks = sum(1 for t in plan.tasks.values() if t.subtopology is sub)
        for store in sub.stores:
            if store.changelog_topic and not store.options.get("source_topic"):
                config = {"cleanup.policy": store.options.get("cleanup.policy", "compact"),
                          "message.timestamp.after.max.ms": str(ANY_TIME)}
                config.update(store.options.get("topic_config", {}))
                specs.append(TopicSpec(store.changelog_topic, tasks, config=config))
    return specs


def internal_topic_problem(spec: TopicSpec, found: TopicInfo | None) -> str | None:
    """A message naming what is wrong with an existing internal topic, or None."""
    if found is None:
        return f"internal topic {spec.name!r} could not be created"
    if spec.name.endswith("-dlq"):
        return None
    if found.partitions != spec.partitions:
        return (f"internal topic {spec.name!r} has {found.partitions} partitions but the topology needs "
                f"{spec.partitions}; run `streams reset` to recreate it")
    wanted = spec.config.get("cleanup.policy")
    actual = found.config.get("cleanup.policy")
    if wanted and actual and set(wanted.split(",")) != set(actual.split(",")):
        return f"changelog topic {spec.name!r} has cleanup.policy={actual}, it must be {wanted}"
    return None


def declaration(name: str, partitions: int = 1) -> str:
    """The line of code that declares a topic."""
    return f'app.topic("{name}", partitions={partitions})'


async def create_declared_topics(admin: Admin, declared: Mapping[str, TopicSpec]) -> None:
    """Create the declared topics that do not exist; one that exists with fewer partitions is an error."""
    if not declared:
        return
    info = await admin.describe_topics(sorted(declared))
    await admin.create_topics([spec for name, spec in declared.items() if info.get(name) is None])
    for name, spec in sorted(declared.items()):
        found = info.get(name)
        if found is not None and found.partitions < spec.partitions:
            raise TopologyError(
                f"topic {name!r} has {found.partitions} partitions but is declared with {spec.partitions}",
                hint=f"add partitions to the topic (keys then move to other partitions), or declare "
                     f"{declaration(name, found.partitions)}")


def topic_roles(topology: CompiledTopology) -> dict[str, list[str]]:
    """What the app does with each topic that it names, internal ones included."""
    roles: dict[str, list[str]] = {}

    def add(topic: str, role: str) -> None:
        roles.setdefault(topic, [])
        if role not in roles[topic]:
            roles[topic].append(role)

    for topic in topology.declared_topics:
        add(topic, "declared")
    for topic in topology.external_source_topics:
        add(topic, "read")
    for topic in topology.external_sink_topics:
        add(topic, "written")
    for topic in topology.global_table_topics:
        add(topic, "global table")
    for topic in topology.repartition_topics:
        add(topic, "repartition")
    for topic in _changelogs(topology):
        add(topic, "changelog")
    return roles


def _changelogs(topology: CompiledTopology) -> list[str]:
    """Changelog topics the app creates (a table read from a topic uses that topic instead)."""
    return sorted({s.changelog_topic for s in topology.stores.values()
                   if s.changelog_topic and not s.options.get("source_topic")})


def missing_topics_error(topology: CompiledTopology, found: Mapping[str, TopicInfo | None]) -> TopologyError | None:
    """An error naming every used, undeclared topic that does not exist, with the lines that declare them."""
    roles = topic_roles(topology)
    used = [*topology.external_source_topics, *topology.external_sink_topics, *topology.global_table_topics]
    missing = sorted({t for t in used if found.get(t) is None})
    if not missing:
        return None
    listed = ", ".join(f"{t!r} ({' and '.join(r for r in roles[t] if r != 'declared')})" for t in missing)
    lines = "; ".join(declaration(t, _partitions_hint(topology, t, found)) for t in missing)
    what = "topic does not exist" if len(missing) == 1 else "topics do not exist"
    return TopologyError(f"{what}: {listed}",
                         hint=f"declare {'it' if len(missing) == 1 else 'them'} and the worker creates "
                              f"{'it' if len(missing) == 1 else 'them'} at start: {lines}")


def _partitions_hint(topology: CompiledTopology, topic: str, found: Mapping[str, TopicInfo | None]) -> int:
    """A partition count to suggest: that of an existing topic it is joined or aggregated with, else 1."""
    for sub in topology.subtopologies:
        for group in sub.copartition_groups:
            if topic in group:
                sizes = [found[t].partitions for t in group if found.get(t) is not None]
                if sizes:
                    return max(sizes)
    return 1


@dataclass(frozen=True)
class TopicUse:
    """A topic of the app: what it does with it, the partitions it expects (None: any) and finds (None: missing)."""

    name: str
    roles: tuple[str, ...]
    expected: int | None
    at_least: bool
    found: int | None
    created: bool


async def topic_uses(admin: Admin, topology: CompiledTopology, dlq_topic: str | None) -> list[TopicUse]:
    """Every topic the app reads, writes or creates, sorted: its own first, internal ones after."""
    roles = topic_roles(topology)
    if dlq_topic:
        roles.setdefault(dlq_topic, []).append("dead letters")
    info = await admin.describe_topics(sorted(roles))
    counts = {t: i.partitions for t, i in info.items() if i is not None}
    for name, spec in topology.declared_topics.items():
        counts.setdefault(name, spec.partitions)
    try:
        plan = plan_tasks(topology, counts)
    except TopologyError:
        plan = None  # an input is missing: internal topics cannot be sized
    expected: dict[str, tuple[int | None, bool]] = {}
    if plan is not None:
        expected.update({t: (plan.partition_counts[t], False) for t in topology.repartition_topics})
        expected.update({s.name: (s.partitions, False) for s in changelog_specs(topology, plan)})
    for name, spec in topology.declared_topics.items():
        expected[name] = (spec.partitions, True)
    if dlq_topic:
        expected[dlq_topic] = (DLQ_PARTITIONS, True)
    internal = {*topology.repartition_topics, *_changelogs(topology), dlq_topic}
    created = internal | set(topology.declared_topics)
    uses = []
    for name, what in roles.items():
        count, at_least = expected.get(name, (None, True))
        found = info.get(name)
        uses.append(TopicUse(name, tuple(what), count, at_least, found.partitions if found else None,
                             name in created))
    return sorted(uses, key=lambda u: (u.name in internal, u.name))
