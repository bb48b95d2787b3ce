"""EmbeddedTransport: consumers, producers and admin clients of an in-process broker."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streams.transport.base import GroupAssignor
from streams.transport.embedded.admin import EmbeddedAdmin
from streams.transport.embedded.broker import EmbeddedBroker
from streams.transport.embedded.config import CONSUMER_OPTIONS, PRODUCER_OPTIONS
from streams.transport.embedded.consumer import EmbeddedConsumer
from streams.transport.embedded.producer import EmbeddedProducer
from streams.transport.embedded.registry import canonical, open_broker


class EmbeddedTransport:
    """The Transport for brokers="memory://[NAME]" or "local://PATH".

    `client_config` applies to every client made here, as with KafkaTransport;
    each client keeps the options its aiokafka counterpart would accept.
    """

    def __init__(self, url: str, client_config: Mapping[str, Any] | None = None) -> None:
        self.url = canonical(url)
        self.client_config: dict[str, Any] = dict(client_config or {})

    @property
    def broker(self) -> EmbeddedBroker:
        """The broker itself, for what Kafka does on its own schedule (compaction) or not at all."""
        return open_broker(self.url)

    def consumer(
        self,
        group_id: str | None,
        *,
        assignor: GroupAssignor | None = None,
        isolation_level: str = "read_uncommitted",
        config: Mapping[str, Any] | None = None,
    ) -> EmbeddedConsumer:
        shared = {k: v for k, v in self.client_config.items() if k in CONSUMER_OPTIONS}
        return EmbeddedConsumer(self.url, group_id, assignor=assignor, isolation_level=isolation_level,
                                config={**shared, **(config or {})})

    def producer(
        self, *, transactional_id: str | None = None, config: Mapping[str, Any] | None = None
    ) -> EmbeddedProducer:
        shared = {k: v for k, v in self.client_config.items() if k in PRODUCER_OPTIONS}
        return EmbeddedProducer(self.url, transactional_id=transactional_id, config={**shared, **(config or {})})

    def admin(self) -> EmbeddedAdmin:
        return EmbeddedAdmin(self.url)
