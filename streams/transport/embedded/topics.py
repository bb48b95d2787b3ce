"""Topics of the embedded broker: names, configs with Kafka's defaults, per-partition log state."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from aiokafka.errors import InvalidConfigurationError, InvalidPartitionsError, InvalidTopicError

# Kafka's defaults for the topic configs the embedded broker acts on, so that
# describe_topics reports the same values on both transports.
DEFAULT_CONFIG: Mapping[str, str] = {
    "cleanup.policy": "delete",
    "delete.retention.ms": "86400000",
    "max.message.bytes": "1048588",
    "message.timestamp.type": "CreateTime",
    "min.cleanable.dirty.ratio": "0.5",
    "retention.ms": "604800000",
    "segment.bytes": "1073741824",
    "segment.ms": "604800000",
}
LEGAL_NAME = re.compile(r"[a-zA-Z0-9._-]{1,249}")
INTEGER_CONFIGS = ("delete.retention.ms", "max.message.bytes", "retention.ms", "segment.bytes", "segment.ms")


def check_topic(name: str, partitions: int, config: Mapping[str, str]) -> None:
    """Refuse what Kafka would refuse when creating a topic."""
    if not LEGAL_NAME.fullmatch(name) or name in (".", ".."):
        raise InvalidTopicError(f"topic name {name!r} is illegal: use up to 249 of [a-zA-Z0-9._-]")
    if partitions < 1:
        raise InvalidPartitionsError(f"topic {name!r} needs at least one partition, not {partitions}")
    for key in INTEGER_CONFIGS:
        if key in config:
            try:
                int(config[key])
            except ValueError:
                raise InvalidConfigurationError(f"{key}={config[key]!r} is not an integer") from None
    policies = set(config.get("cleanup.policy", "delete").split(","))
    if not policies or not policies <= {"compact", "delete"}:
        raise InvalidConfigurationError(f"cleanup.policy={config['cleanup.policy']!r}: use compact and/or delete")
    if config.get("message.timestamp.type", "CreateTime") not in ("CreateTime", "LogAppendTime"):
        raise InvalidConfigurationError("message.timestamp.type must be CreateTime or LogAppendTime")


@dataclass
class PartitionState:
    """Offsets of one partition's log, and the boundary Kafka's segments would draw in it.

    Kafka compacts only closed segments; the active segment starts at
    segment_base and rolls on an append once segment.ms has passed since its
    first record, or when segment.bytes would be exceeded.  clean_offset is
    where the not yet compacted ("dirty") part of the log begins.
    """

    log_start: int = 0
    next_offset: int = 0
    segment_base: int = 0
    segment_started_ms: int = 0
    segment_bytes: int = 0
    clean_offset: int = 0
    open_transactions: dict[str, int] = field(default_factory=dict)  # transactional id -> first offset

    def stable_offset(self) -> int:
        """The last stable offset: read_committed consumers read below it."""
        return min(self.open_transactions.values(), default=self.next_offset)


@dataclass
class TopicState:
    name: str
    config: dict[str, str]
    partitions: list[PartitionState]

    def setting(self, key: str) -> str:
        return self.config.get(key, DEFAULT_CONFIG[key])

    def number(self, key: str) -> float:
        return float(self.setting(key))

    @property
    def compacted(self) -> bool:
        return "compact" in self.setting("cleanup.policy").split(",")

    def described(self) -> dict[str, str]:
        return {**DEFAULT_CONFIG, **self.config}
