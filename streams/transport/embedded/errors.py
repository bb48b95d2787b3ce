"""Errors of the embedded broker.

Where Kafka has an error for the same situation, the broker raises aiokafka's
class for it (ProducerFenced, CommitFailedError, UnknownTopicOrPartitionError
and so on), so code that handles them works on both transports.
"""

from __future__ import annotations

from aiokafka.errors import ProducerFenced

from streams.errors import StreamsError, TaskFencedError


class BrokerInUseError(StreamsError):
    """A local:// directory is already open in another process."""


class BrokerClosedError(StreamsError):
    """The client's broker was closed; create the client again to reopen it."""


class ProducerFencedError(TaskFencedError, ProducerFenced):
    """A newer producer took this transactional id; this one may do nothing more.

    It is the framework's TaskFencedError, as the Kafka transport reports
    fencing, and aiokafka's ProducerFenced as well.
    """
