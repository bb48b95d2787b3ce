"""Topics as declarations: a name with the partitions, configs and serdes the app expects of it.

app.topic(...) returns a Topic, which app.stream, app.table, app.global_table,
app.agent, to() and app.send take wherever they take a topic name.  The worker
creates declared topics that are missing when it starts, so an app that
declares its topics runs on a fresh broker (memory:// included), and a
declared topic that exists with fewer partitions than declared stops it with
both counts.  A topic used but not declared must exist already.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from streams.record import Headers
from streams.serdes import Serde, SerdeLike, bind, resolve, resolve_typed
from streams.transport.base import TopicSpec

_LEGAL = re.compile(r"[A-Za-z0-9._-]{1,249}")

Sender = Callable[..., Awaitable[None]]
HeadersLike = Mapping[str, str | bytes] | Headers | None


class Topic:
    """A declared topic.  `await topic.send(key, value)` writes to it from agents, timers, tasks and scripts.

    partitions: created with this many; an existing topic with fewer is an error (None: 1 when created,
        any count when it exists).
    replication: the replication factor it is created with (default 1).
    config: topic configs it is created with, e.g. {"cleanup.policy": "compact"}.
    key_serde / value_serde: how its keys and values are written; streams, tables and agents that read
        it, and sinks and sends that write it, use them unless given others.
    key_type / value_type: a model type (dataclass, msgspec.Struct, pydantic model) its keys or values
        hold, as for App.stream.
    """

    def __init__(self, name: str, partitions: int | None = None, replication: int | None = None,
                 config: Mapping[str, Any] | None = None, *, key_serde: SerdeLike = None,
                 value_serde: SerdeLike = None, key_type: type | None = None, value_type: type | None = None,
                 sender: Sender | None = None) -> None:
        if not isinstance(name, str) or not _LEGAL.fullmatch(name) or name in (".", ".."):
            raise ValueError(f"topic name {name!r}: Kafka allows 1 to 249 of the characters A-Z a-z 0-9 . _ -")
        for setting, value in (("partitions", partitions), ("replication", replication)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"topic {name!r}: {setting} must be a whole number of at least 1, got {value!r}")
        self.name = name
        self.partitions = partitions
        self.replication = replication
        self.config = {str(k): str(v) for k, v in (config or {}).items()}
        # What the topic says about serdes, None meaning "not said"; readers and writers merge it with theirs.
        self.serdes: dict[str, Any] = {"key_serde": key_serde, "value_serde": value_serde, "key_type": key_type,
                                       "value_type": value_type}
        self.spec = TopicSpec(name, partitions or 1, replication or 1, self.config)
        self._sender = sender
        serdes_for(self)  # a bad serde or type fails here, at the declaration

    def same_declaration(self, other: Topic) -> bool:
        return (self.name, self.partitions, self.replication, self.config, self.serdes) == (
            other.name, other.partitions, other.replication, other.config, other.serdes)

    async def send(self, key: Any = None, value: Any = None, *, headers: HeadersLike = None,
                   timestamp: int | None = None) -> None:
        """Write one record, placed by its key's murmur2 hash as every other record is.

        Inside an agent the record joins the task's output (and, under exactly-once, the transaction of
        the record being processed), with that record's timestamp unless one is given; elsewhere it goes
        through the producer of the worker running in this process, or a producer of its own.
        """
        if self._sender is None:
            raise RuntimeError(f"topic {self.name!r} was not declared with app.topic(): send with app.send()")
        await self._sender(self, key, value, headers=headers, timestamp=timestamp)

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"Topic({self.name!r}, partitions={self.partitions})"


def topic_name(topic: str | Topic) -> str:
    return topic.name if isinstance(topic, Topic) else topic


def declared_topic(topics: dict[str, Topic], topic: str | Topic) -> Topic | None:
    """The app's declaration of a topic (a Topic passed in becomes one), or None for a topic it did not declare."""
    name = topic_name(topic)
    existing = topics.get(name)
    if not isinstance(topic, Topic):
        return existing
    if existing is None:
        topics[name] = topic
        return topic
    if existing is not topic and not existing.same_declaration(topic):
        raise ValueError(f"topic {name!r} is declared twice, differently: {existing!r} and {topic!r}")
    return existing


def serdes_for(declared: Topic | None, key_serde: SerdeLike = None, value_serde: SerdeLike = None,
               fallback: tuple[Serde | None, Serde | None] = (None, None), *, key_type: type | None = None,
               value_type: type | None = None) -> tuple[Serde, Serde]:
    """Serdes given here (a serde, a model type or both) win, then those the declared topic names, then the
    fallback, then str keys and JSON values.

    Writers pass their stream's serdes as the fallback; readers have none.
    """
    said = declared.serdes if declared is not None else {}
    return (_pick(key_serde, key_type, said.get("key_serde"), said.get("key_type"), fallback[0], "str", "key_type"),
            _pick(value_serde, value_type, said.get("value_serde"), said.get("value_type"), fallback[1], "json",
                  "value_type"))


def _pick(serde: SerdeLike, model: type | None, said_serde: SerdeLike, said_model: type | None,
          fallback: Serde | None, default: str, setting: str) -> Serde:
    if serde is not None or model is not None:
        return resolve_typed(serde, model, default, setting)
    if said_serde is not None or said_model is not None:
        return resolve_typed(said_serde, said_model, default, setting)
    return fallback if fallback is not None else resolve(default, default)


def bound_serdes(topics: dict[str, Topic], topic: str | Topic, key_serde: SerdeLike = None,
                 value_serde: SerdeLike = None, fallback: tuple[Serde | None, Serde | None] = (None, None), *,
                 key_type: type | None = None, value_type: type | None = None) -> tuple[Serde, Serde]:
    """serdes_for() a topic by name or declaration, bound to it (a registry serde takes its subject from it)."""
    ks, vs = serdes_for(declared_topic(topics, topic), key_serde, value_serde, fallback, key_type=key_type,
                        value_type=value_type)
    name = topic_name(topic)
    return bind(ks, name, True), bind(vs, name, False)


def normalize_headers(headers: HeadersLike) -> Headers:
    """Headers as the transport carries them: (name, bytes) pairs; str values are UTF-8 encoded."""
    if not headers:
        return ()
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return tuple((str(name), value.encode() if isinstance(value, str) else bytes(value)) for name, value in pairs)
