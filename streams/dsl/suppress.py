"""What table.suppress() takes: until_window_closes() or until_time_limit(), with the buffer's limits."""

from __future__ import annotations

from dataclasses import dataclass

from streams.compiler.topology import Node, TopologyBuilder
from streams.processors.suppress import Suppress
from streams.serdes import Serde, bind
from streams.state.spec import StoreSpec
from streams.windows.definitions import Duration, WindowDefinition, to_ms

WHEN_FULL = ("emit_early", "fail")


@dataclass(frozen=True)
class Suppressed:
    """A suppression: which updates a table holds back, for how long, and what a full buffer does.

    Make one with until_window_closes() or until_time_limit().
    """

    until: str  # "window_closes" or "time_limit"
    limit_ms: int
    max_records: int | None
    max_bytes: int | None
    when_full: str


def until_window_closes(*, max_records: int | None = None, max_bytes: int | None = None) -> Suppressed:
    """Emit each window's final result once, when the window closes (the same results as emit="final").

    A full buffer fails the worker: emitting early would break the promise of one final result.
    """
    return Suppressed("window_closes", 0, _limit(max_records, "max_records"), _limit(max_bytes, "max_bytes"), "fail")


def until_time_limit(limit: Duration, *, max_records: int | None = None, max_bytes: int | None = None,
                     when_full: str = "emit_early") -> Suppressed:
    """Hold a key's updates back for `limit` of stream time after the first one, then emit its latest value.

    when_full="emit_early" emits the oldest held keys when the buffer exceeds max_records or
    max_bytes; "fail" stops the worker with BufferFullError instead.
    """
    if when_full not in WHEN_FULL:
        raise ValueError(f"when_full must be one of {WHEN_FULL}, got {when_full!r}")
    return Suppressed("time_limit", to_ms(limit, "limit"), _limit(max_records, "max_records"),
                      _limit(max_bytes, "max_bytes"), when_full)


def _limit(value: int | None, what: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{what} must be a positive int or None, got {value!r}")
    return value


def add_suppress(builder: TopologyBuilder, parent: Node, suppressed: Suppressed, name: str | None, key_serde: Serde,
                 value_serde: Serde, window: WindowDefinition | None) -> Node:
    """The suppress node after `parent`, with its buffer in `<name>-store` (changelogged)."""
    if not isinstance(suppressed, Suppressed):
        raise TypeError(f"suppress() takes until_window_closes() or until_time_limit(...), got {suppressed!r}")
    if suppressed.until == "window_closes" and window is None:
        raise TypeError("until_window_closes() needs a windowed table; a table can be suppressed until_time_limit()")
    node_name = builder.new_name("KTABLE-SUPPRESS", name)
    store_name = f"{node_name}-store"
    changelog = builder.internal_topic(store_name, "changelog")
    value_serde = bind(value_serde, changelog, False)
    spec = builder.add_store(StoreSpec(store_name, key_serde, value_serde, changelog))
    window = window if suppressed.until == "window_closes" else None

    def make() -> Suppress:
        return Suppress(node_name, store_name, key_serde, value_serde, window=window, limit_ms=suppressed.limit_ms,
                        max_records=suppressed.max_records, max_bytes=suppressed.max_bytes,
                        emit_early=suppressed.when_full == "emit_early")

    return builder.add(Node(node_name, "KTABLE-SUPPRESS", make, stores=(spec,),
                            params={"until": suppressed.until}), parent)
