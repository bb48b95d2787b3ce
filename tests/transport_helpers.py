"""Helpers for tests that drive an app through the transport interface (any broker)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from streams import App
from streams.transport import TopicPartition


async def run_until(app: App, condition: Callable[[], bool], timeout: float = 20) -> None:
    """Run a worker for the app until it has tasks and the condition holds, then stop it cleanly."""
    worker = app.create_worker()
    runner = asyncio.create_task(worker.run())
    try:
        async with asyncio.timeout(timeout):
            while not (worker.tasks and condition()):
                await asyncio.sleep(0.05)
    finally:
        worker.stop()
        await runner


async def read_all(transport, topic: str, partitions: int = 1) -> list[tuple[bytes, bytes]]:
    """Every (key, value) of a topic, partition by partition, from the start to the current end."""
    consumer = transport.consumer(None)
    await consumer.start()
    records = []
    try:
        for partition in range(partitions):
            tp = TopicPartition(topic, partition)
            end = (await consumer.end_offsets([tp]))[tp]
            consumer.assign([tp])
            consumer.seek(tp, 0)
            while await consumer.position(tp) < end:
                records.extend((r.key, r.value) for r in (await consumer.poll(200)).get(tp, []))
    finally:
        await consumer.stop()
    return records
