"""Faust-style agents: an async function that iterates a stream.

The task appends each batch to the agent's buffer and then awaits drain(): the
agent's `async for` takes records from the buffer without suspending, and only
awaits again when the buffer is empty.  So an agent costs one await per batch,
not per record.  A value the agent yields is forwarded to its sink with the key
of the record being processed.  If the agent raises, the current record goes to
the error policy and the agent restarts on the rest of the batch.

While an agent runs, current_agent() returns its processor, so that sends and
agent tables reach the task that runs it: a send joins the task's output like
a yielded value, and a table is the task's own store.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from typing import Any

from streams.processors.api import Processor
from streams.record import Headers, Record
from streams.serdes import Serde

log = logging.getLogger(__name__)

_current: ContextVar[AgentProcessor | None] = ContextVar("streams_current_agent", default=None)


def current_agent() -> AgentProcessor | None:
    """The agent whose code is running, or None outside agents."""
    return _current.get()


class AgentStream:
    """What the agent function iterates: values, or (key, value) pairs via items()."""

    def __init__(self) -> None:
        self._buffer: deque[Record] = deque()
        self._wakeup: asyncio.Future | None = None
        self._idle: asyncio.Future | None = None
        self.current: Record | None = None

    def feed(self, batch: list[Record]) -> None:
        self._buffer.extend(batch)
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    async def _next_record(self) -> Record:
        while not self._buffer:
            loop = asyncio.get_running_loop()
            if self._idle is not None and not self._idle.done():
                self._idle.set_result(None)
            self._wakeup = loop.create_future()
            await self._wakeup
        self.current = self._buffer.popleft()
        return self.current

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._values()

    async def _values(self) -> AsyncIterator[Any]:
        while True:
            yield (await self._next_record()).value

    async def items(self) -> AsyncIterator[tuple[Any, Any]]:
        while True:
            record = await self._next_record()
            yield record.key, record.value

    async def wait_idle(self, runner: asyncio.Task) -> None:
        """Wait until the agent has taken every buffered record and asks for more (or ended)."""
        if not self._buffer and self._wakeup is not None and not self._wakeup.done():
            return
        self._idle = asyncio.get_running_loop().create_future()
        await asyncio.wait({self._idle, runner}, return_when=asyncio.FIRST_COMPLETED)

    def has_pending(self) -> bool:
        return bool(self._buffer)

    def pending(self) -> list[Record]:
        rest = list(self._buffer)
        self._buffer.clear()
        return rest


class AgentProcessor(Processor):
    """The terminal processor of an agent's sub-topology, one per task."""

    def __init__(self, name: str, fn: Callable[[AgentStream], Any], sink: str | None,
                 key_serde: Serde, value_serde: Serde) -> None:
        super().__init__(name)
        self.fn = fn
        self.sink = sink
        self.key_serde = key_serde
        self.value_serde = value_serde
        self.stream = AgentStream()
        self._runner: asyncio.Task | None = None

    def process(self, batch: list[Record]) -> None:
        self.stream.feed(batch)

    async def drain(self) -> None:
        """Let the agent consume everything fed so far; restart it after a failure."""
        while True:
            if self._runner is not None and self._runner.done():
                self._settle_finished_runner()
            if self._runner is None:
                if not self.stream.has_pending():
                    return
                self._runner = asyncio.get_running_loop().create_task(self._run())
            await self.stream.wait_idle(self._runner)
            if not self._runner.done():
                return

    def _settle_finished_runner(self) -> None:
        runner, self._runner = self._runner, None
        exc = None if runner.cancelled() else runner.exception()
        if exc is not None:
            self.context.report_error(self.stream.current, exc, self.name)
        elif self.stream.has_pending():
            log.warning("agent %s returned with %d records unread", self.name, len(self.stream.pending()))
        self.stream.current = None

    def send(self, topic: str, key: Any, value: Any, key_serde: Serde, value_serde: Serde, headers: Headers,
             timestamp: int | None) -> None:
        """Add a record to the task's output, attributed to the record being processed (for the DLQ)."""
        current = self.stream.current
        if timestamp is None:
            timestamp = current.timestamp if current is not None else self.context.wall_clock_ms()
        origin = current.origin if current is not None else None
        self.context.emit(topic, [Record(key, value, timestamp, headers, origin)], key_serde, value_serde)

    async def _run(self) -> None:
        _current.set(self)  # this asyncio task's own context: it never leaks to the caller
        result = self.fn(self.stream)
        if inspect.isasyncgen(result):
            async for value in result:
                self._forward_value(value)
        else:
            await result

    def _forward_value(self, value: Any) -> None:
        current = self.stream.current
        if self.sink is None or current is None:
            return
        record = Record(current.key, value, current.timestamp, current.headers, current.origin)
        self.context.emit(self.sink, [record], self.key_serde, self.value_serde)

    async def stop(self) -> None:
        """Cancel the agent and wait until it has finished (its finally blocks have run).

        Only cancelling would leave the task pending in a loop that may close next
        (the TestDriver's), and asyncio reports it as destroyed while pending.
        """
        runner, self._runner = self._runner, None
        if runner is None or runner.done():
            return
        runner.cancel()
        await asyncio.wait({runner})

    def close(self) -> None:
        if self._runner is not None and not self._runner.done():
            self._runner.cancel()
