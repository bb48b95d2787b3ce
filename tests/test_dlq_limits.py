"""A poison record larger than the dead-letter topic takes, on the real broker, under both guarantees.

A 5 MB record that cannot be deserialized sits among good ones.  Its dead
letter must be written (whole if the dead-letter topic was created by the
worker, truncated with a header if an existing topic is smaller), the good
records must come out exactly once and the input offsets must be committed:
no crash and restart loop under at-least-once, no abort loop under exactly-once.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka import TopicPartition as KafkaTopicPartition

from streams import App
from streams.task.errors_policy import ErrorPolicy
from streams.transport.base import RawRecord
from tests.conftest import create_topics, unique_name
from tests.kafka_helpers import FAST_GROUP, decoded, read_topic, running, wait_for

BIG = 5 * 1024 * 1024
INPUT_LIMIT = str(8 * 1024 * 1024)


async def produce_with_poison(brokers: str, topic: str, good_before: int, good_after: int) -> bytes:
    """Good JSON records around one 5 MB value that is not JSON; returns the poison value."""
    poison = b"{" + b"x" * BIG
    producer = AIOKafkaProducer(bootstrap_servers=brokers, max_request_size=BIG + 1024 * 1024)
    await producer.start()
    base = int(time.time() * 1000) - 60_000
    try:
        for i in range(good_before):
            await producer.send(topic, b"%d" % i, key=b"k%d" % i, timestamp_ms=base + i)
        await producer.send(topic, poison, key=b"poison", timestamp_ms=base + good_before)
        for i in range(good_before, good_before + good_after):
            await producer.send(topic, b"%d" % i, key=b"k%d" % i, timestamp_ms=base + i + 1)
        await producer.flush()
    finally:
        await producer.stop()
    return poison


async def committed(brokers: str, group: str, topic: str) -> int | None:
    consumer = AIOKafkaConsumer(bootstrap_servers=brokers, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return await consumer.committed(KafkaTopicPartition(topic, 0))
    finally:
        await consumer.stop()


async def read_dlq(brokers: str, topic: str) -> list:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=brokers, auto_offset_reset="earliest",
                                enable_auto_commit=False, isolation_level="read_committed",
                                max_partition_fetch_bytes=16 * 1024 * 1024, fetch_max_bytes=32 * 1024 * 1024)
    await consumer.start()
    try:
        batch = await consumer.getmany(timeout_ms=10_000)
        return [r for records in batch.values() for r in records]
    finally:
        await consumer.stop()


def poison_app(brokers: str, tmp_path, guarantee: str) -> App:
    app = App(unique_name("poison"), brokers=brokers, state_dir=tmp_path, commit_interval=0.2,
              processing_guarantee=guarantee, consumer_config=FAST_GROUP)
    return app


async def run_poison_case(brokers: str, tmp_path, guarantee: str, dlq_exists: bool) -> tuple[App, list, bytes]:
    src, out = unique_name("in"), unique_name("out")
    await create_topics(brokers, {src: 1}, {"max.message.bytes": INPUT_LIMIT})
    await create_topics(brokers, {out: 1})
    app = poison_app(brokers, tmp_path, guarantee)
    if dlq_exists:  # made earlier with the broker's 1 MB limit, e.g. by an operator
        await create_topics(brokers, {app.config.dlq_topic: 1})
    app.stream(src, value_serde="json").map_values(lambda v: v * 10).to(out)
    poison = await produce_with_poison(brokers, src, 99, 20)
    async with running(app) as worker:
        got = await read_topic(brokers, out, expected=119, timeout=30)
        await wait_for(lambda: worker.metrics.get("dlq_records") == 1, timeout=30)
        # Offsets past the poison record are committed while the worker runs: no restart, no abort loop.
        await asyncio.wait_for(_until_committed(brokers, app.app_id, src, 120), 30)
        assert worker.consumer is not None and worker.tasks, "the worker is still running"
    assert sorted(decoded(got), key=lambda kv: int(kv[0][1:])) == [(f"k{i}", i * 10) for i in range(119)]
    dead = await read_dlq(brokers, app.config.dlq_topic)
    return app, dead, poison


async def _until_committed(brokers: str, group: str, topic: str, offset: int) -> None:
    while await committed(brokers, group, topic) != offset:
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
async def test_poison_record_too_large_for_an_existing_dlq_is_truncated(brokers, tmp_path, guarantee):
    app, dead, poison = await run_poison_case(brokers, tmp_path, guarantee, dlq_exists=True)
    [record] = dead
    headers = dict(record.headers)
    assert record.key == b"poison"
    assert headers["streams.error.truncated"] == b"value=%d" % len(poison)
    assert headers["streams.error.type"] == b"JSONDecodeError"
    assert 0 < len(record.value) < 1024 * 1024 and poison.startswith(record.value)


async def test_dlq_created_by_the_worker_takes_the_largest_input_record_whole(brokers, tmp_path):
    app, dead, poison = await run_poison_case(brokers, tmp_path, "at_least_once", dlq_exists=False)
    [record] = dead
    assert record.value == poison and "streams.error.truncated" not in dict(record.headers)


def test_dead_letter_truncation_keeps_the_record_within_the_limit():
    policy = ErrorPolicy("dlq", "app-dlq", max_record_bytes=10_000)
    origin = RawRecord("in", 0, 7, 1, b"k" * 50, b"v" * 50_000, (("trace", b"t" * 100),))
    letter = policy.dead_letter(origin, ValueError("bad"), "op", {"app-dlq": 1})
    headers = dict(letter.headers)
    assert headers["streams.error.truncated"] == b"value=50000"
    assert headers["trace"] == b"t" * 100 and letter.key == origin.key
    assert policy.record_size(letter.key, letter.value, letter.headers) <= 10_000
    assert origin.value.startswith(letter.value) and len(letter.value) > 9_000
    huge_key = origin._replace(key=b"k" * 20_000, value=b"v")
    letter = policy.dead_letter(huge_key, ValueError("bad"), "op", {"app-dlq": 1})
    assert dict(letter.headers)["streams.error.truncated"] == b"value=1,key=20000"
    assert policy.record_size(letter.key, letter.value, letter.headers) <= 10_000
    small = origin._replace(value=b"v" * 100)
    assert "streams.error.truncated" not in dict(policy.dead_letter(small, ValueError("x"), "op", {}).headers)
