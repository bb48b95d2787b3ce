"""The internal topics an application needs, and how to tell a wrong one."""

from __future__ import annotations

from streams.compiler.compile import CompiledTopology, PhysicalPlan
from streams.transport.base import TopicInfo, TopicSpec


def changelog_specs(topology: CompiledTopology, plan: PhysicalPlan) -> list[TopicSpec]:
    """One compacted changelog per store, one partition per task of its sub-topology."""
    specs = []
    for sub in topology.subtopologies:
        tasks = sum(1 for t in plan.tasks.values() if t.subtopology is sub)
        for store in sub.stores:
            if store.changelog_topic and not store.options.get("source_topic"):
                config = {"cleanup.policy": store.options.get("cleanup.policy", "compact")}
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
