"""An embedded broker: the whole runtime in one process, without Kafka.

brokers="memory://[NAME]" keeps topics in memory; brokers="local://PATH"
keeps them in a SQLite database under PATH, across restarts.  It implements
streams.transport's protocols with Kafka's semantics (partitions, offsets,
consumer groups, compaction, transactions) for one process only.
"""

from streams.transport.embedded.admin import EmbeddedAdmin
from streams.transport.embedded.broker import EmbeddedBroker
from streams.transport.embedded.consumer import EmbeddedConsumer
from streams.transport.embedded.errors import BrokerClosedError, BrokerInUseError
from streams.transport.embedded.producer import EmbeddedProducer
from streams.transport.embedded.registry import close_broker, is_embedded, open_broker
from streams.transport.embedded.transport import EmbeddedTransport

__all__ = [
    "BrokerClosedError",
    "BrokerInUseError",
    "EmbeddedAdmin",
    "EmbeddedBroker",
    "EmbeddedConsumer",
    "EmbeddedProducer",
    "EmbeddedTransport",
    "close_broker",
    "is_embedded",
    "open_broker",
]
