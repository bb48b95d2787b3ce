"""Operator fusion: which chains of stateless operators run as one processor.

A chain is a path of stateless operators (filter, map, map_values, flat_map,
flat_map_values, select_key, peek, foreach) where each one but the first has
one parent and each one but the last has one child.  The task runs such a chain
as a single processor (streams/processors/fused.py), so a record crosses it
without a Record or a batch list per operator.
"""

from __future__ import annotations

from streams.compiler.topology import Node

FUSABLE_KINDS = frozenset({
    "KSTREAM-FILTER", "KSTREAM-MAP", "KSTREAM-MAPVALUES", "KSTREAM-FLATMAP", "KSTREAM-FLATMAPVALUES",
    "KSTREAM-KEY-SELECT", "KSTREAM-PEEK", "KSTREAM-FOREACH",
})


def fusable_chains(nodes: list[Node]) -> list[list[Node]]:
    """The maximal chains of two or more fusable operators among `nodes`, each in data-flow order."""
    chains, taken = [], set()
    for node in nodes:
        if id(node) in taken or not _fusable(node) or _continues(node):
            continue
        chain = [node]
        while len(chain[-1].children) == 1 and _continues(chain[-1].children[0]):
            chain.append(chain[-1].children[0])
        if len(chain) > 1:
            chains.append(chain)
            taken.update(id(n) for n in chain)
    return chains


def _fusable(node: Node) -> bool:
    return node.kind in FUSABLE_KINDS and not node.source_topics


def _continues(node: Node) -> bool:
    """The node extends its parent's chain: both fusable, and the edge is the only way in and out."""
    if not _fusable(node) or len(node.parents) != 1 or node.branch is not None:
        return False
    parent = node.parents[0]
    return _fusable(parent) and len(parent.children) == 1
