"""The broker transport implemented on aiokafka."""

from streams.transport.kafka.admin import KafkaAdmin
from streams.transport.kafka.assignor import AssignorAdapter
from streams.transport.kafka.consumer import KafkaConsumer
from streams.transport.kafka.producer import KafkaProducer
from streams.transport.kafka.transport import KafkaTransport

__all__ = ["AssignorAdapter", "KafkaAdmin", "KafkaConsumer", "KafkaProducer", "KafkaTransport"]
