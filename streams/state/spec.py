"""The description of a state store: its name, serdes, changelog topic and kind.

The DSL records one per stateful operator; the runtime and the TestDriver open
real stores from it, and the query views decode keys and values with its serdes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from streams.serdes import Serde


@dataclass(eq=False)
class StoreSpec:
    """A state store that one stateful node owns, backed by a changelog topic."""

    name: str
    key_serde: Serde
    value_serde: Serde
    changelog_topic: str | None
    kind: str = "keyvalue"
    options: dict[str, Any] = field(default_factory=dict)
