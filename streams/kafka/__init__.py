"""The broker transport implemented on aiokafka."""

from streams.kafka.admin import KafkaAdmin
from streams.kafka.assignor import AssignorAdapter
from streams.kafka.consumer import KafkaConsumer
from streams.kafka.producer import KafkaProducer
from streams.kafka.transport import KafkaTransport

__all__ = ["AssignorAdapter", "KafkaAdmin", "KafkaConsumer", "KafkaProducer", "KafkaTransport"]
