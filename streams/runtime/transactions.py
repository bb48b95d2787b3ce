"""One transactional producer per task, for exactly-once processing.

Its transactional id is "<app-id>-<task-id>", so whichever worker starts a task's
producer fences every older instance of that task (a zombie that lost the task
but does not know it yet) and aborts the zombie's open transaction.  A
transaction opens at the task's first send after a commit and is committed by
the commit protocol.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from streams.transport.base import OutRecord, Producer, TopicPartition

log = logging.getLogger(__name__)


class TaskTransaction:
    """A task's transactional producer that begins its transaction lazily."""

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

    async def send_offsets_to_transaction(self, offsets: Mapping[TopicPartition, int], group_id: str) -> None:
        await self._ensure_open()
        await self.producer.send_offsets_to_transaction(offsets, group_id)

    async def commit_transaction(self) -> None:
        if self.open:
            await self.producer.commit_transaction()
            self.open = False

    async def abort_transaction(self) -> None:
        if self.open:
            self.open = False
            await self.producer.abort_transaction()


class TaskTransactions:
    """The transactional producers of the tasks this worker runs."""

    def __init__(self, transport: Any, app_id: str, config: Mapping[str, Any]) -> None:
        self._transport = transport
        self._app_id = app_id
        self._config = dict(config)
        self.by_task: dict[str, TaskTransaction] = {}

    async def start(self, task_id: str) -> TaskTransaction:
        """Start the task's producer; this fences older owners of the task."""
        producer = self._transport.producer(transactional_id=f"{self._app_id}-{task_id}", config=self._config)
        transaction = TaskTransaction(producer)
        await transaction.start()
        self.by_task[task_id] = transaction
        return transaction

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
        for task_id in list(self.by_task):
            await self.close(task_id, abort)
