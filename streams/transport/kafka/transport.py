"""KafkaTransport: makes aiokafka-backed consumers, producers and admin clients."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient

from streams.transport.base import GroupAssignor
from streams.transport.kafka.admin import KafkaAdmin
from streams.transport.kafka.consumer import KafkaConsumer
from streams.transport.kafka.producer import KafkaProducer

ADMIN_OPTIONS = frozenset(inspect.signature(AIOKafkaAdminClient.__init__).parameters) - {"self", "loop"}


class KafkaTransport:
    """One cluster: `client_config` (client id, security, timeouts) applies to every client made here."""

    def __init__(self, brokers: str, client_config: Mapping[str, Any] | None = None) -> None:
        self.brokers = brokers
        self.client_config: dict[str, Any] = dict(client_config or {})

    def consumer(
        self,
        group_id: str | None,
        *,
        assignor: GroupAssignor | None = None,
        isolation_level: str = "read_uncommitted",
        config: Mapping[str, Any] | None = None,
    ) -> KafkaConsumer:
        return KafkaConsumer(
            self.brokers,
            group_id,
            assignor=assignor,
            isolation_level=isolation_level,
            config={**self.client_config, **(config or {})},
        )

    def producer(
        self, *, transactional_id: str | None = None, config: Mapping[str, Any] | None = None
    ) -> KafkaProducer:
        return KafkaProducer(
            self.brokers, transactional_id=transactional_id, config={**self.client_config, **(config or {})}
        )

    def admin(self) -> KafkaAdmin:
        """The admin client takes only connection settings, so other client_config keys are left out."""
        admin_config = {key: value for key, value in self.client_config.items() if key in ADMIN_OPTIONS}
        return KafkaAdmin(self.brokers, admin_config=admin_config, client_config=self.client_config)
