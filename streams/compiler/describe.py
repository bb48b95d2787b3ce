"""Human-readable views of a compiled topology: text, and Mermaid for docs."""

from __future__ import annotations

from streams.compiler.compile import CompiledTopology
from streams.compiler.topology import Node
from streams.state.global_store import global_specs
from streams.state.spec import StoreSpec


def _label(node: Node) -> str:
    if node.source_topics:
        return f"Source: {node.name} (topics: [{', '.join(node.source_topics)}])"
    if node.sink_topic or node.params.get("dynamic_topic"):
        return f"Sink: {node.name} (topic: {node.sink_topic or '<chosen per record>'})"
    stores = f" (stores: [{', '.join(s.name for s in node.stores)}])" if node.stores else ""
    return f"Processor: {node.name}{stores}"


def _global_tables(topology: CompiledTopology) -> list[tuple[StoreSpec, list[Node]]]:
    """Each global table's store with the nodes that read it: no sub-topology holds them."""
    readers: dict[str, list[Node]] = {}
    for sub in topology.subtopologies:
        for node in sub.nodes:
            table = node.params.get("global_table")
            if table:
                readers.setdefault(table, []).append(node)
    return [(spec, readers.get(spec.name, [])) for spec in global_specs(topology.stores.values())]


def describe_text(topology: CompiledTopology) -> str:
    lines = ["Topologies:"]
    for sub in topology.subtopologies:
        lines.append(f"   Sub-topology: {sub.id}")
        for node in sub.nodes:
            lines.append(f"    {_label(node)}")
            if node.children:
                lines.append(f"      --> {', '.join(c.name for c in node.children)}")
            if node.parents:
                lines.append(f"      <-- {', '.join(p.name for p in node.parents)}")
        for store in sub.stores:
            lines.append(f"    Store: {store.name} (changelog: {store.changelog_topic or 'none'})")
    for spec, readers in _global_tables(topology):
        lines.append(f"   Global table: {spec.name} (topic: {spec.options['topic']}, a full copy in every worker)")
        if readers:
            lines.append(f"      read by: {', '.join(node.name for node in readers)}")
    return "\n".join(lines) + "\n"


def describe_mermaid(topology: CompiledTopology) -> str:
    lines = ["flowchart TD"]
    ids: dict[int, str] = {}
    for sub in topology.subtopologies:
        lines.append(f"    subgraph sub{sub.id}[\"Sub-topology {sub.id}\"]")
        for node in sub.nodes:
            ids[id(node)] = f"n{len(ids)}"
            lines.append(f"        {ids[id(node)]}[\"{node.name}\"]")
        lines.append("    end")
    topics: dict[str, str] = {}

    def topic_id(name: str) -> str:
        if name not in topics:
            topics[name] = f"t{len(topics)}"
            lines.append(f"    {topics[name]}[(\"{name}\")]")
        return topics[name]

    for sub in topology.subtopologies:
        for node in sub.nodes:
            for topic in node.source_topics:
                lines.append(f"    {topic_id(topic)} --> {ids[id(node)]}")
            for child in node.children:
                lines.append(f"    {ids[id(node)]} --> {ids[id(child)]}")
            if node.sink_topic:
                lines.append(f"    {ids[id(node)]} --> {topic_id(node.sink_topic)}")
            for store in node.stores:
                lines.append(f"    {ids[id(node)]} -.- {_store_id(store)}{{{{\"{store.name}\"}}}}")
    for spec, readers in _global_tables(topology):
        sid = _store_id(spec)
        lines.append(f"    {topic_id(spec.options['topic'])} --> {sid}{{{{\"{spec.name} (global)\"}}}}")
        lines.extend(f"    {ids[id(node)]} -.- {sid}" for node in readers)
    return "\n".join(lines) + "\n"


def _store_id(store: StoreSpec) -> str:
    return f"s_{store.name.replace('-', '_')}"
