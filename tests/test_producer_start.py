"""A transactional producer that cannot start while the broker comes back must not stop the worker.

A broker restarted a moment ago can answer the first metadata request before it
has registered itself, so the metadata names no broker.  aiokafka then fails the
producer's start with an AssertionError, which the worker used to take for a bug
and exit on.  The producer reports it as the broker being unavailable, and the
worker's producer is replaced so the next transaction starts it afresh.

The empty metadata is made by hiding the brokers the real client learnt: the
window on a restarting broker lasts milliseconds and cannot be hit on purpose.
"""

from __future__ import annotations

import pytest
from aiokafka.client import AIOKafkaClient

from streams.runtime.transactions import WorkerTransaction
from streams.transport import OutRecord
from streams.transport.errors import broker_unavailable
from streams.transport.kafka import KafkaTransport
from tests.conftest import create_topics, unique_name
from tests.kafka_helpers import read_topic


def hide_brokers(monkeypatch) -> None:
    """From here on a client's metadata names no broker, as a broker's first answer after a restart can."""
    monkeypatch.setattr(AIOKafkaClient, "get_random_node", lambda self: None)


async def test_a_producer_start_without_brokers_is_a_broker_failure(brokers, monkeypatch):
    hide_brokers(monkeypatch)
    producer = KafkaTransport(brokers).producer(transactional_id=unique_name("no-brokers"))
    with pytest.raises(Exception) as failure:
        await producer.start()
    await producer.stop()
    assert broker_unavailable(failure.value), repr(failure.value)
    assert "no broker ready" in str(failure.value)


async def test_a_worker_producer_that_failed_to_start_is_replaced_and_starts_later(brokers, monkeypatch):
    topic = unique_name("restart-producer")
    await create_topics(brokers, {topic: 1})
    hide_brokers(monkeypatch)
    transaction = WorkerTransaction(KafkaTransport(brokers), unique_name("restart-producer"), {})
    failed = transaction.producer
    with pytest.raises(Exception) as failure:
        await transaction.start()
    assert broker_unavailable(failure.value)
    assert transaction.producer is not failed and not transaction.started

    monkeypatch.undo()  # the broker is ready now
    try:
        await transaction.send_many([OutRecord(topic, 0, b"k", b"v", None, ())])
        await transaction.flush()
        await transaction.commit_transaction()
    finally:
        await transaction.stop()
    assert transaction.started
    assert [(r.key, r.value) for r in await read_topic(brokers, topic, expected=1)] == [(b"k", b"v")]
