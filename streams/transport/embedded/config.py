"""Client settings: the embedded clients accept exactly the options aiokafka's clients accept.

Options that only matter on a network (timeouts, security, batching) are
accepted and ignored, so one App configuration runs on both transports; an
unknown option is a TypeError, as aiokafka makes it.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

CONSUMER_OPTIONS = frozenset(inspect.signature(AIOKafkaConsumer.__init__).parameters) - {"self", "loop", "topics"}
PRODUCER_OPTIONS = frozenset(inspect.signature(AIOKafkaProducer.__init__).parameters) - {"self", "loop"}
RESET_POLICIES = ("earliest", "latest", "none")
DEFAULT_POLL_RECORDS = 10_000


def check_options(config: Mapping[str, Any], allowed: frozenset[str], client: str) -> None:
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise TypeError(f"the {client} got unexpected options: {', '.join(unknown)}")


@dataclass(frozen=True)
class ConsumerSettings:
    auto_offset_reset: str = "earliest"
    session_timeout_s: float = 10.0
    heartbeat_interval_s: float = 3.0
    rebalance_timeout_s: float = 300.0
    max_poll_records: int = DEFAULT_POLL_RECORDS
    client_id: str = "streams-embedded"

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> ConsumerSettings:
        config = dict(config or {})
        check_options(config, CONSUMER_OPTIONS, "consumer")
        reset = config.get("auto_offset_reset", "earliest")
        if reset not in RESET_POLICIES:
            raise ValueError(f"auto_offset_reset must be one of {RESET_POLICIES}, not {reset!r}")
        rebalance_ms = config.get("rebalance_timeout_ms") or config.get("max_poll_interval_ms", 300_000)
        return cls(
            auto_offset_reset=reset,
            session_timeout_s=config.get("session_timeout_ms", 10_000) / 1000,
            heartbeat_interval_s=config.get("heartbeat_interval_ms", 3_000) / 1000,
            rebalance_timeout_s=rebalance_ms / 1000,
            max_poll_records=config.get("max_poll_records") or DEFAULT_POLL_RECORDS,
            client_id=config.get("client_id") or cls.client_id,
        )
