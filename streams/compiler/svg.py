"""The topology as a picture: an SVG of sub-topologies, their nodes, topics and stores.

The layout is layered: in each sub-topology a node sits one row below its
lowest parent, input topics above the sources, output topics below the sinks
and each store beside the node that owns it.  Sub-topologies stand side by
side.  Every node box carries an empty rate line (`data-rate-for`) that the
topology page fills in live.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

from streams.compiler.compile import CompiledTopology, SubTopology
from streams.compiler.topology import Node

BOX_W, BOX_H = 230, 46
TOPIC_H, STORE_W = 30, 170
GAP_X, GAP_Y, PAD, TITLE = 24, 34, 16, 26


@dataclass
class Box:
    kind: str  # "node", "topic" or "store"
    label: str
    x: float
    y: float
    w: float
    h: float
    detail: str = ""
    node: str | None = None  # the node's name, for the live rate

    @property
    def top(self) -> tuple[float, float]:
        return self.x + self.w / 2, self.y

    @property
    def bottom(self) -> tuple[float, float]:
        return self.x + self.w / 2, self.y + self.h


@dataclass
class Edge:
    start: tuple[float, float]
    end: tuple[float, float]
    dashed: bool = False


def _kind_detail(node: Node) -> str:
    if node.source_topics:
        return "source"
    if node.sink_topic or node.params.get("dynamic_topic"):
        return "sink"
    return node.kind.lower().replace("kstream-", "").replace("ktable-", "table ")


@dataclass(eq=False)
class _Item:
    """A box to place, the items it hangs from, and its row."""

    box: Box
    parents: list[_Item]
    depth: int = 0
    stores: list[Box] = field(default_factory=list)


def _items(sub: SubTopology) -> list[_Item]:
    """Input topics, nodes and output topics of a sub-topology, each one row below its lowest parent."""
    items: list[_Item] = []
    topics: dict[str, _Item] = {}
    for node in sub.nodes:
        for topic in node.source_topics:
            if topic not in topics:
                topics[topic] = _Item(Box("topic", topic, 0, 0, BOX_W, TOPIC_H, "topic"), [])
                items.append(topics[topic])
    by_node: dict[int, _Item] = {}
    for node in sub.nodes:  # nodes come parents first
        parents = [topics[t] for t in node.source_topics] + [by_node[id(p)] for p in node.parents if id(p) in by_node]
        item = _Item(Box("node", node.name, 0, 0, BOX_W, BOX_H, _kind_detail(node), node.name), parents)
        item.depth = 1 + max((p.depth for p in parents), default=0)
        by_node[id(node)] = item
        items.append(item)
        item.stores = [Box("store", store.name, 0, 0, STORE_W, TOPIC_H, "store") for store in node.stores]
        sink = node.sink_topic or ("<topic chosen per record>" if node.params.get("dynamic_topic") else None)
        if sink is not None:
            items.append(_Item(Box("topic", sink, 0, 0, BOX_W, TOPIC_H, "topic"), [item], item.depth + 1))
    return items


def layout(topology: CompiledTopology) -> tuple[list[Box], list[Edge], list[Box], float, float]:
    """Boxes, edges, sub-topology frames, and the picture's width and height."""
    boxes: list[Box] = []
    edges: list[Edge] = []
    frames: list[Box] = []
    left = PAD
    height = 0.0
    for sub in topology.subtopologies:
        items = _items(sub)
        rows: list[list[_Item]] = [[] for _ in range(max(i.depth for i in items) + 1)]
        for item in items:
            rows[item.depth].append(item)
        width = max(sum(_row_width(i) for i in row) for row in rows) + GAP_X
        y = PAD + TITLE + PAD
        for row in rows:
            # Each box goes under the middle of its parents, which keeps edges from crossing much.
            row.sort(key=lambda i: sum(p.box.x + p.box.w / 2 for p in i.parents) / len(i.parents) if i.parents else 0)
            row_height = max(i.box.h for i in row)
            placed = []
            for item in row:
                item.box.y = y + (row_height - item.box.h) / 2
                placed.append(item.box)
                for store in item.stores:
                    store.y = y + (row_height - store.h) / 2
                    placed.append(store)
            _center(placed, left, width)
            boxes.extend(placed)
            y += row_height + GAP_Y
        for item in items:
            edges.extend(Edge(parent.box.bottom, item.box.top) for parent in item.parents)
            a = item.box
            edges.extend(Edge((a.x + a.w, a.y + a.h / 2), (b.x, b.y + b.h / 2), dashed=True) for b in item.stores)
        frames.append(Box("frame", f"Sub-topology {sub.id}", left, PAD, width, y - PAD))
        height = max(height, y + PAD)
        left += width + GAP_X
    return boxes, edges, frames, left + PAD, height


def _row_width(item: _Item) -> float:
    return item.box.w + GAP_X + sum(store.w + GAP_X for store in item.stores)


def _center(items: list[Box], left: float, width: float) -> None:
    total = sum(b.w for b in items) + GAP_X * max(0, len(items) - 1)
    x = left + (width - total) / 2
    for box in items:
        box.x = x
        x += box.w + GAP_X


def topology_svg(topology: CompiledTopology) -> str:
    """The SVG element (no XML prolog), to embed in a page."""
    boxes, edges, frames, width, height = layout(topology)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" id="topology" width="{width:.0f}" height="{height:.0f}" '
           f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="sans-serif" font-size="12">',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker></defs>']
    for frame in frames:
        out.append(f'<g class="subtopology"><rect x="{frame.x:.0f}" y="{frame.y:.0f}" width="{frame.w:.0f}" '
                   f'height="{frame.h:.0f}" rx="8" fill="#f6f8fa" stroke="#c8d1dc"/>'
                   f'<text x="{frame.x + 10:.0f}" y="{frame.y + 18:.0f}" font-weight="bold">'
                   f'{escape(frame.label)}</text></g>')
    for edge in edges:
        (x1, y1), (x2, y2) = edge.start, edge.end
        style = 'stroke-dasharray="4 3"' if edge.dashed else 'marker-end="url(#arrow)"'
        out.append(f'<line class="edge" x1="{x1:.0f}" y1="{y1:.0f}" x2="{x2:.0f}" y2="{y2:.0f}" '
                   f'stroke="#555" {style}/>')
    for box in boxes:
        out.append(_box_svg(box))
    out.append("</svg>")
    return "\n".join(out)


def _box_svg(box: Box) -> str:
    label = escape(box.label if len(box.label) <= 34 else box.label[:33] + "…")
    cx = box.x + box.w / 2
    if box.kind == "topic":
        return (f'<g class="topic"><title>{escape(box.label)}</title><rect x="{box.x:.0f}" y="{box.y:.0f}" '
                f'width="{box.w:.0f}" height="{box.h:.0f}" rx="15" fill="#fff4d6" stroke="#c9a227"/>'
                f'<text x="{cx:.0f}" y="{box.y + 19:.0f}" text-anchor="middle">{label}</text></g>')
    if box.kind == "store":
        return (f'<g class="store"><title>store {escape(box.label)}</title><rect x="{box.x:.0f}" y="{box.y:.0f}" '
                f'width="{box.w:.0f}" height="{box.h:.0f}" rx="3" fill="#e3f4e8" stroke="#3c9a5f"/>'
                f'<text x="{cx:.0f}" y="{box.y + 19:.0f}" text-anchor="middle">&#9707; {label}</text></g>')
    node = escape(box.node or "")
    return (f'<g class="node" data-node="{node}"><title>{escape(box.label)} ({escape(box.detail)})</title>'
            f'<rect x="{box.x:.0f}" y="{box.y:.0f}" width="{box.w:.0f}" height="{box.h:.0f}" rx="4" '
            f'fill="#e8f0fe" stroke="#3b6fd8"/>'
            f'<text x="{cx:.0f}" y="{box.y + 18:.0f}" text-anchor="middle">{label}</text>'
            f'<text class="rate" data-rate-for="{node}" x="{cx:.0f}" y="{box.y + 36:.0f}" text-anchor="middle" '
            f'fill="#555">…</text></g>')
