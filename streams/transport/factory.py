"""Open the transport a config names: Kafka, or the embedded broker for memory:// and local://."""

from __future__ import annotations

from streams.config import StreamsConfig
from streams.transport.base import Transport


def open_transport(config: StreamsConfig) -> Transport:
    """Kafka clients get the config's connection and security settings; the embedded broker needs none."""
    if config.brokers.embedded:
        from streams.transport.embedded import EmbeddedTransport

        return EmbeddedTransport(config.brokers.url)
    from streams.transport.kafka import KafkaTransport

    return KafkaTransport(config.brokers.url, client_config=config.client_config())
