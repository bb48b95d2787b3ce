"""A worker running inside the caller's event loop, with a handle to talk to it.

    async with app.running() as run:
        await run.send(clicks, "ada", {"page": "/"})
        await run.until(lambda: app.store("views").get("ada") == 1)
        alerts = await run.read(alerts_topic, count=1)

For scripts, notebooks and tests on any broker: the worker is the real one
(consumer group, commits, state), started on entry and stopped cleanly on
exit; `run` sends records, reads topics and waits for conditions, and raises
whatever stopped the worker instead of hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from streams.dsl.topic import HeadersLike, Topic, bound_serdes, topic_name
from streams.record import Record
from streams.runtime.clients import TopicReader, end_offsets
from streams.runtime.worker import Worker
from streams.serdes import Serde, SerdeLike
from streams.transport.base import TopicPartition, Transport

if TYPE_CHECKING:
    from streams.app import App

POLL_MS = 100


class Run:
    """A running worker of an app: send, read, wait, stop."""

    def __init__(self, app: App, worker: Worker, runner: asyncio.Task,
                 starts: Mapping[TopicPartition, int]) -> None:
        self.app = app
        self.worker = worker
        self._runner = runner
        self._starts = starts
        self._readers: dict[str, TopicReader] = {}
        self._unread: dict[str, list[Record]] = {}

    @property
    def metrics(self) -> Mapping[str, int]:
        """The worker's counters summed over tasks: records_processed, dlq_records, skipped_records, late_records, ...

        docs/operations.md lists them; /metrics on the worker's web server has them per task, topic and node.
        """
        return self.worker.metrics.totals()

    async def send(self, topic: str | Topic, key: Any = None, value: Any = None, *, headers: HeadersLike = None,
                   timestamp: int | None = None) -> None:
        """Send a record through the worker's producer (app.send); the worker's next commit flushes it."""
        self._check_alive()
        await self.app.send(topic, key, value, headers=headers, timestamp=timestamp)

    async def read(self, topic: str | Topic, count: int | None = None, *, timeout: float = 10.0,
                   from_beginning: bool = False, key_serde: SerdeLike = None, value_serde: SerdeLike = None,
                   key_type: type | None = None, value_type: type | None = None) -> list[Record]:
        """Records written to a topic since the run started, in the order of each partition; each read goes
        on where the last read of the topic stopped.  With from_beginning, the topic's records from its
        start instead, leaving that place alone.

        With count, exactly that many, waiting up to timeout seconds for them (TimeoutError
        if fewer come); without, every record up to the topic's current end.  Keys and values
        are read with the serdes (or model types) given, else the declared topic's, else str and JSON.
        """
        self._check_alive()
        name = topic_name(topic)
        ks, vs = bound_serdes(self.app.builder.topics, topic, key_serde, value_serde, key_type=key_type,
                              value_type=value_type)
        if from_beginning:
            reader = await self._open_reader(name, ks, vs, "beginning")
            try:
                records, rest = await self._take(reader, [], count, timeout)
            finally:
                await reader.stop()
            return records
        reader = self._readers.get(name)
        if reader is None:
            reader = self._readers[name] = await self._open_reader(name, ks, vs, self._starts)
        records, self._unread[name] = await self._take(reader, self._unread.get(name, []), count, timeout)
        return records

    async def _take(self, reader: TopicReader, records: list[Record], count: int | None,
                    timeout: float) -> tuple[list[Record], list[Record]]:
        """`count` records (or all up to the current end), and those read beyond them."""
        deadline = time.monotonic() + timeout
        ends = await reader.end_offsets() if count is None else None
        while count is None or len(records) < count:
            if ends is not None and await reader.caught_up(ends):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"read {len(records)} records of {reader.topic!r} in {timeout}s"
                                   + (f", waiting for {count}" if count is not None else ", not to its end"))
            self._check_alive()
            records = [*records, *await reader.poll(POLL_MS)]
        taken = len(records) if count is None else count
        return records[:taken], records[taken:]

    async def until(self, predicate: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0) -> None:
        """Wait until predicate() (a function or coroutine function) holds; TimeoutError after timeout seconds."""
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            result = predicate()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{getattr(predicate, '__name__', 'the condition')} did not hold within {timeout}s")
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        """Stop the worker: it finishes its batch, commits and leaves the group; raises what stopped it, if any."""
        if self._runner.done() and not self._readers:
            self._runner.result()
            return
        for reader in self._readers.values():
            await reader.stop()
        self._readers.clear()
        self.worker.stop()
        await self._runner

    def _check_alive(self) -> None:
        if self._runner.done():
            self._runner.result()  # raises what stopped the worker
            raise RuntimeError("the worker has stopped")

    async def _open_reader(self, name: str, key_serde: Serde, value_serde: Serde,
                           start: str | Mapping[TopicPartition, int]) -> TopicReader:
        reader = TopicReader(self.worker.transport, name, key_serde, value_serde, self.app.config.consumer_config)
        await reader.start(self.worker.admin, start)
        return reader


@contextlib.asynccontextmanager
async def running(app: App, ready_timeout: float = 30.0) -> AsyncIterator[Run]:
    """Start a worker of the app in this event loop; yield once it has its first assignment; stop it on exit."""
    worker = app.create_worker()
    starts = await _ends_now(app, worker.transport)
    runner = asyncio.create_task(worker.run(handle_signals=False))
    run = Run(app, worker, runner, starts)
    try:
        assigned = asyncio.create_task(worker.wait_assigned())
        done, _ = await asyncio.wait({assigned, runner}, timeout=ready_timeout, return_when=asyncio.FIRST_COMPLETED)
        assigned.cancel()
        if runner in done:
            runner.result()
            raise RuntimeError("the worker stopped before it joined its group")
        if not done:
            raise TimeoutError(f"the worker did not join its group within {ready_timeout}s")
        yield run
    except BaseException:
        # The block's error (or the start's) is the one to see, not a second one from stopping.
        with contextlib.suppress(Exception):
            await run.stop()
        raise
    await run.stop()


async def _ends_now(app: App, transport: Transport) -> dict[TopicPartition, int]:
    """Where the topics the app knows end before the worker starts: reads of the run begin there."""
    topology = app.topology()
    names = sorted({*topology.declared_topics, *topology.external_source_topics, *topology.external_sink_topics})
    admin = transport.admin()
    await admin.start()
    try:
        return await end_offsets(admin, names)
    finally:
        await admin.stop()
