"""Global tables in the DSL: a handle on a table that every worker holds in full.

A GlobalTable is not a node of the topology: no task owns it.  The app records
its store spec; each worker (and the TestDriver) keeps one global store for it,
fed from the topic itself (see streams.state.global_store).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streams.serdes import Serde
from streams.state.global_store import GLOBAL_KIND
from streams.state.spec import StoreSpec

if TYPE_CHECKING:
    from streams.compiler.topology import TopologyBuilder


class GlobalTable:
    """A table replicated on every worker (Kafka Streams' GlobalKTable); join it with stream.join().

    store_name names its store, for app.store(name).
    """

    def __init__(self, builder: TopologyBuilder, spec: StoreSpec) -> None:
        self._builder = builder
        self.spec = spec
        self.store_name = spec.name
        self.topic: str = spec.options["topic"]
        self.key_serde = spec.key_serde
        self.value_serde = spec.value_serde

    def __repr__(self) -> str:
        return f"GlobalTable({self.topic!r}, name={self.store_name!r})"


def add_global_table(builder: TopologyBuilder, topic: str, key_serde: Serde, value_serde: Serde,
                     name: str | None) -> GlobalTable:
    store_name = name or builder.new_name("GLOBAL-TABLE-STATE-STORE")
    spec = builder.add_store(StoreSpec(store_name, key_serde, value_serde, changelog_topic=None, kind=GLOBAL_KIND,
                                       options={"topic": topic}))
    return GlobalTable(builder, spec)
