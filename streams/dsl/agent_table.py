"""Tables for agents: a dict-like table that an agent reads and writes while it processes records.

    counts = app.agent_table("word-counts", default=int)

    @app.agent(words)
    async def count(stream):
        async for word in stream:
            counts[word] += 1

An agent table is a store of the agent's sub-topology, so it is what the DSL's
aggregations use: one RocksDB store per task behind a write cache, a compacted
changelog with one partition per task, restored on start, followed by
standbys, and under exactly-once committed in the transaction that commits the
input offsets.  It is partitioned like the agent's input: the task of
partition p holds the keys whose murmur2 hash puts them in partition p, and it
may touch no other key (its changes would land in another task's changelog).
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

from streams.compiler.topology import TopologyBuilder
from streams.errors import TopologyError
from streams.processors.agents import current_agent
from streams.serdes import SerdeLike, resolve
from streams.state.spec import StoreSpec

_MISSING = object()


class AgentTable:
    """A table that agents use like a dict: table[key], table[key] += 1, del table[key], key in table, .get().

    default: a callable giving the value of a missing key, as for collections.defaultdict (e.g. int, list);
        without one, a missing key raises KeyError.  A value read from the table is a copy: change it by
        assigning it back (table[key] = value), as `+=` does.
    Outside agents, query it with app.store(name).
    """

    def __init__(self, builder: TopologyBuilder, name: str, default: Callable[[], Any] | None,
                 key_serde: SerdeLike, value_serde: SerdeLike) -> None:
        if default is not None and not callable(default):
            raise TypeError(f"agent table {name!r}: default must be a callable such as int or list, "
                            f"got {default!r}")
        self.name = name
        self.default = default
        self.key_serde = resolve(key_serde, "str")
        self.value_serde = resolve(value_serde, "json")
        self.spec = builder.add_store(StoreSpec(name, self.key_serde, self.value_serde,
                                                builder.internal_topic(name, "changelog")))

    def _store(self, key: Any) -> tuple[Any, bytes]:
        """The running task's store of this table and the key's bytes, if the key is this task's."""
        agent = current_agent()
        if agent is None:
            raise RuntimeError(f"agent table {self.name!r} is read and written inside agents; "
                               f"elsewhere, query it with app.store({self.name!r})")
        task = agent.context
        store = task.stores.get(self.name)
        if store is None:
            raise TopologyError(f"agent {agent.name!r} uses table {self.name!r}, which is not among its tables",
                                hint="pass tables=[...] to @app.agent naming it, or refer to the table by "
                                     "a global or enclosing variable in the agent's function")
        raw = self.key_serde.serialize(key)
        if raw is None:
            raise KeyError(f"agent table {self.name!r} has no None key")
        home = task.home_partition(raw)
        if home != task.partition:
            raise TopologyError(
                f"agent {agent.name!r} touched key {key!r} of table {self.name!r} while processing partition "
                f"{task.partition}, but that key belongs to partition {home} of {task.partitions}: a table is "
                "partitioned like its agent's input, and each task holds only its own partition's keys",
                hint="key the input by the table's key (send it to a topic keyed that way, or group_by it in "
                     "the DSL), so that a record and the table rows it updates are co-partitioned")
        return store, raw

    def __getitem__(self, key: Any) -> Any:
        store, raw = self._store(key)
        data = store.get(raw)
        if data is not None:
            return self.value_serde.deserialize(data)
        if self.default is None:
            raise KeyError(key)
        return self.default()

    def get(self, key: Any, default: Any = None) -> Any:
        store, raw = self._store(key)
        data = store.get(raw)
        return default if data is None else self.value_serde.deserialize(data)

    def __setitem__(self, key: Any, value: Any) -> None:
        store, raw = self._store(key)
        data = self.value_serde.serialize(value)
        if data is None:
            store.delete(raw)
        else:
            store.put(raw, data)

    def __delitem__(self, key: Any) -> None:
        store, raw = self._store(key)
        if store.get(raw) is None:
            raise KeyError(key)
        store.delete(raw)

    def __contains__(self, key: Any) -> bool:
        store, raw = self._store(key)
        return store.get(raw) is not None

    def __repr__(self) -> str:
        return f"AgentTable({self.name!r})"


def tables_used(fn: Callable[..., Any]) -> list[AgentTable]:
    """The agent tables a function names through its globals or enclosing variables (nested code included)."""
    names: set[str] = set()
    pending = [fn.__code__]
    while pending:
        code = pending.pop()
        names.update(code.co_names)
        pending.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    found = [fn.__globals__.get(name, _MISSING) for name in sorted(names)]
    for cell in fn.__closure__ or ():
        try:
            found.append(cell.cell_contents)
        except ValueError:  # an enclosing variable not assigned yet
            continue
    return list({id(t): t for t in found if isinstance(t, AgentTable)}.values())
