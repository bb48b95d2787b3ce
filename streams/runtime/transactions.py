"""Transactional producers for exactly-once processing.

exactly_once_v2 (brokers 2.5 and later): one producer per worker, with the
transactional id "<app-id>-<worker-id>".  Its transaction holds the output of
all the worker's tasks, and their input offsets travel with the consumer's
group metadata (KIP-447), so the group coordinator refuses the offsets of a
worker whose generation is stale: a zombie cannot commit.  A worker restarted
on the same state directory keeps its worker id, so its new producer aborts at
once whatever its crashed incarnation left open.

exactly_once (older brokers): one producer per task, with the transactional id
"<app-id>-<task-id>", so whichever worker starts a task's producer fences
every older instance of that task and aborts its open transaction.

Either way a transaction opens at the first send after a commit, and the
commit protocol (streams.runtime.commit) commits it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from streams.transport.base import GroupMetadata, OutRecord, Producer, TopicPartition

log = logging.getLogger(__name__)


class LazyTransaction:
    """A transactional producer that begins its transaction at the first send or offsets after a commit."""

    def __init__(self, producer: Producer) -> None:
        self.producer = producer
        self.open = False

    async def _ensure_open(self) -> None:
        if not self.open:
            await self.producer.begin_transaction()
            self.open = True

    async def start(self) -> None:
        await self.producer.start()

    async def stop(self) -> None:
        await self.producer.stop()

    async def send_many(self, records: Iterable[OutRecord]) -> None:
        records = list(records)
        if records:
            await self._ensure_open()
            await self.producer.send_many(records)

    async def flush(self) -> dict[TopicPartition, int]:
        return await self.producer.flush()

    async def send_offsets_to_transaction(self, offsets: Mapping[TopicPartition, int],
                                          group: str | GroupMetadata) -> None:
        await self._ensure_open()
        await self.producer.send_offsets_to_transaction(offsets, group)

    async def commit_transaction(self) -> None:
        if self.open:
            await self.producer.commit_transaction()
            self.open = False

    async def abort_transaction(self) -> None:
        if self.open:
            self.open = False
            await self.producer.abort_transaction()


class WorkerTransaction(LazyTransaction):
    """exactly_once_v2: the worker's one transactional producer."""

    def __init__(self, transport: Any, transactional_id: str, config: Mapping[str, Any]) -> None:
        self._transport = transport
        self.transactional_id = transactional_id
        self._config = dict(config)
        super().__init__(self._new_producer())
        self.started = False

    def _new_producer(self) -> Producer:
        return self._transport.producer(transactional_id=self.transactional_id, config=self._config)

    async def start(self) -> None:
        """Start; a producer that fails to start is closed and replaced, so the next try starts afresh."""
        try:
            await self.producer.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await self.producer.stop()
            self.producer = self._new_producer()
            raise
        self.started = True

    async def _ensure_open(self) -> None:
        if not self.started:  # a replacement that could not start while the broker was away
            await self.start()
        await super()._ensure_open()

    async def stop(self) -> None:
        """Stop; an open transaction is aborted rather than left open until the transaction timeout."""
        with contextlib.suppress(Exception):
            await self.abort_transaction()
        await self.producer.stop()

    async def discard(self) -> None:
        """Drop the open transaction; if the producer cannot abort it (it was fenced), start a new one.

        The new producer takes a newer epoch of the same transactional id, which
        makes the broker abort whatever the old one left open.
        """
        try:
            await self.abort_transaction()
            return
        except Exception as exc:
            log.warning("abort failed (%s: %s); starting a new transactional producer", type(exc).__name__, exc)
        with contextlib.suppress(Exception):
            await self.producer.stop()
        self.producer = self._new_producer()
        self.started = False
        await self.start()  # if the broker is away this fails; the next transaction starts it


class TaskTransactions:
    """exactly_once: the transactional producers of the tasks this worker runs."""

    def __init__(self, transport: Any, app_id: str, config: Mapping[str, Any]) -> None:
        self._transport = transport
        self._app_id = app_id
        self._config = dict(config)
        self.by_task: dict[str, LazyTransaction] = {}

    async def start(self, task_id: str) -> LazyTransaction:
        """Start the task's producer; this fences older owners of the task."""
        producer = self._transport.producer(transactional_id=f"{self._app_id}-{task_id}", config=self._config)
        transaction = LazyTransaction(producer)
        try:
            await transaction.start()
        except BaseException:
            # A broker that is down fails the start: the client must still be closed.
            with contextlib.suppress(Exception):
                await transaction.stop()
            raise
        self.by_task[task_id] = transaction
        return transaction

    async def start_all(self, task_ids: list[str]) -> None:
        """Start the tasks' producers at once; the first failure is raised once all have settled."""
        results = await asyncio.gather(*(self.start(task_id) for task_id in task_ids), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def close(self, task_id: str, abort: bool = False) -> None:
        transaction = self.by_task.pop(task_id, None)
        if transaction is None:
            return
        if abort:
            with contextlib.suppress(Exception):
                await transaction.abort_transaction()
        with contextlib.suppress(Exception):
            await transaction.stop()

    async def close_all(self, abort: bool) -> None:
        """Close every producer at once: each close may wait on the broker up to its bound."""
        await asyncio.gather(*(self.close(task_id, abort) for task_id in list(self.by_task)))
