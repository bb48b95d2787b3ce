"""Helpers for tests against the real broker: produce, read back, run a worker in-process."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams import App
from streams.runtime.worker import Worker


def encode(obj: Any) -> bytes | None:
    if obj is None or isinstance(obj, bytes):
        return obj
    if isinstance(obj, str):
        return obj.encode()
    return orjson.dumps(obj)


async def produce(brokers: str, topic: str, records: Iterable[tuple], partition: int | None = None) -> None:
    """Send (key, value) or (key, value, timestamp_ms) tuples; str keys, JSON values."""
    producer = AIOKafkaProducer(bootstrap_servers=brokers, linger_ms=5)
    await producer.start()
    try:
        futures = []
        for record in records:
            key, value, *rest = record
            futures.append(await producer.send(topic, encode(value), key=encode(key), partition=partition,
                                               timestamp_ms=rest[0] if rest else None))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def read_topic(brokers: str, topic: str, expected: int | None = None, timeout: float = 20.0,
                     isolation_level: str = "read_committed", idle: float = 1.5) -> list:
    """Read a topic from the start: until `expected` records arrived, or until idle for `idle` seconds."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=brokers, auto_offset_reset="earliest",
                                enable_auto_commit=False, isolation_level=isolation_level)
    await consumer.start()
    records: list = []
    deadline = time.monotonic() + timeout
    last_seen = time.monotonic()
    try:
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for messages in batch.values():
                records.extend(messages)
            if batch:
                last_seen = time.monotonic()
            if expected is not None and len(records) >= expected:
                break
            if expected is None and records and time.monotonic() - last_seen > idle:
                break
    finally:
        await consumer.stop()
    return records


def decoded(records: list, value: str = "json") -> list[tuple]:
    def dv(raw: bytes | None) -> Any:
        if raw is None:
            return None
        return orjson.loads(raw) if value == "json" else raw.decode()

    return [(r.key.decode() if r.key is not None else None, dv(r.value)) for r in records]


FAST_GROUP = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 500}


@contextlib.asynccontextmanager
async def running(app: App, ready_timeout: float = 30.0) -> AsyncIterator[Worker]:
    """Run a worker for `app` in this event loop until the block exits."""
    worker = app.create_worker()
    runner = asyncio.create_task(_run_worker(worker))
    try:
        deadline = time.monotonic() + ready_timeout
        while not worker.tasks:
            if runner.done():
                runner.result()
            if time.monotonic() > deadline:
                raise TimeoutError("worker got no tasks")
            await asyncio.sleep(0.05)
        yield worker
    finally:
        worker.stop()
        await asyncio.wait_for(runner, 30)


async def _run_worker(worker: Worker) -> None:
    clean = False
    try:
        await worker.start()
        await worker.loop()
        clean = True
    finally:
        await worker.shutdown(commit=clean)


async def wait_for(condition, timeout: float = 20.0, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(interval)
