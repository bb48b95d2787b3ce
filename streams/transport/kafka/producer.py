"""The Producer protocol on aiokafka's AIOKafkaProducer, sending whole batches.

Every wait on the broker is bounded.  aiokafka retries some requests forever: a
transaction that wrote to a topic deleted since then retries adding it to the
transaction, and every flush, abort and stop behind it would wait for good.
Here a flush gives up after the request timeout plus a margin, an abort after
ABORT_TIMEOUT_S, and a stop fails what is still queued after STOP_TIMEOUT_S.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    KafkaConnectionError,
    KafkaTimeoutError,
    ProducerFenced,
)
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.structs import RecordMetadata

from streams.errors import TaskFencedError
from streams.transport.base import GroupMetadata, OutRecord, TopicPartition
from streams.transport.kafka.partitions import keys_to_aiokafka
from streams.transport.kafka.txn_offsets import send_offsets_with_generation

DEFAULTS: Mapping[str, Any] = {"acks": "all", "linger_ms": 5, "max_batch_size": 256 << 10}
"""Over aiokafka's defaults: 256 KiB batches, not 16 KiB, made the stateless pipeline 1.3x faster
(docs/performance.md, "Client defaults")."""
FENCING_ERRORS = (ProducerFenced, InvalidProducerEpoch, InvalidProducerIdMapping)
DEFAULT_REQUEST_TIMEOUT_MS = 40_000  # aiokafka's
FLUSH_MARGIN_S = 5.0  # beyond the request timeout: a retry's back-off and lingering
ABORT_TIMEOUT_S = 10.0  # an abort that cannot finish is left to the next owner's fencing, which aborts too
STOP_TIMEOUT_S = 5.0  # batches still queued at stop were never committed; they are failed, not awaited
_NO_HEADERS: list = []  # aiokafka wants a list and only reads it; one shared empty list saves one per record


@contextlib.contextmanager
def fencing_as_task_error(transactional_id: str | None):
    """Report fencing in the framework's terms: another worker owns the task now."""
    try:
        yield
    except FENCING_ERRORS as exc:
        raise TaskFencedError(f"producer {transactional_id!r} was fenced by a newer instance: "
                              f"{type(exc).__name__}") from exc


class PendingBatch:
    """A submitted batch: where it went, how many records, and its delivery future."""

    __slots__ = ("partition", "count", "delivery")

    def __init__(self, partition: TopicPartition, count: int, delivery: Awaitable[RecordMetadata]) -> None:
        self.partition = partition
        self.count = count
        self.delivery = delivery


class KafkaProducer:
    """A producer that hands aiokafka one batch per partition instead of one send per record.

    A per-record send awaits the accumulator for every record; building the
    batches here costs one await per full batch, and the broker returns one
    base offset per batch, from which flush() derives the last offset written.
    """

    def __init__(
        self,
        brokers: str,
        *,
        transactional_id: str | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        options = {**DEFAULTS, **(config or {})}
        if transactional_id is not None:
            options["transactional_id"] = transactional_id
        self.transactional_id = transactional_id
        self.flush_timeout_s = options.get("request_timeout_ms", DEFAULT_REQUEST_TIMEOUT_MS) / 1000 + FLUSH_MARGIN_S
        self._producer = AIOKafkaProducer(bootstrap_servers=brokers, **options)
        self._pending: list[PendingBatch] = []

    async def start(self) -> None:
        """Start; a transactional producer fences older instances and aborts their open transaction."""
        try:
            with fencing_as_task_error(self.transactional_id):
                await self._producer.start()
        except AssertionError as exc:
            # aiokafka asserts when its metadata names no broker yet, as a restarted broker's first
            # answer can: that is a broker not ready, which passes, not a bug.
            raise KafkaConnectionError(f"no broker ready to start producer {self.transactional_id or ''}: "
                                       f"{exc}") from exc

    async def stop(self) -> None:
        stopping = asyncio.ensure_future(self._producer.stop())
        done, _ = await asyncio.wait([stopping], timeout=STOP_TIMEOUT_S)
        if not done:  # aiokafka's stop waits for every queued batch
            for batch in self._pending:  # never flushed: no one will look at how they ended
                asyncio.ensure_future(batch.delivery).add_done_callback(_consume_outcome)
            self._pending = []
            self._producer._message_accumulator.fail_all(
                KafkaTimeoutError(f"producer {self.transactional_id or ''} stopped with batches unacknowledged"))
            await stopping

    async def send_many(self, records: Iterable[OutRecord]) -> None:
        """Queue records: build every batch first, then submit the partitions side by side.

        aiokafka queues one batch per partition and a produce request carries at
        most one batch per partition.  Submitting one partition's batches after
        another's would cost a broker round trip per batch; submitting all
        partitions at once lets every request carry each partition's next batch.
        Waits only while partitions' earlier batches are still queued; a fenced
        transactional producer fails that wait, which is reported as fencing.
        """
        runs = self._build(records)
        with fencing_as_task_error(self.transactional_id):
            if len(runs) == 1:
                [(tp, batches)] = runs.items()
                await self._submit_run(tp, batches)
                return
            results = await asyncio.gather(*(self._submit_run(tp, batches) for tp, batches in runs.items()),
                                           return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    raise result

    def _build(self, records: Iterable[OutRecord]) -> dict[TopicPartition, list[BatchBuilder]]:
        """Full batches per partition, in record order.

        This runs for every record produced.  A task's output comes in long runs
        for one partition, so the partition's batches are looked up only when the
        partition changes.
        """
        runs: dict[TopicPartition, list[BatchBuilder]] = {}
        create_batch = self._producer.create_batch
        tp: TopicPartition | None = None
        batches: list[BatchBuilder] = []
        batch: BatchBuilder | None = None
        for record in records:
            if tp is None or record.partition != tp.partition or record.topic != tp.topic:
                tp = TopicPartition(record.topic, record.partition)
                batches = runs.get(tp)  # type: ignore[assignment]
                if batches is None:
                    batches = runs[tp] = [create_batch()]
                batch = batches[-1]
            headers = record.headers
            if batch.append(key=record.key, value=record.value, timestamp=record.timestamp,
                            headers=list(headers) if headers else _NO_HEADERS) is None:
                batch = create_batch()
                batches.append(batch)
                append(batch, record)
        return runs

    async def _submit_run(self, tp: TopicPartition, batches: list[BatchBuilder]) -> None:
        for batch in batches:
            await self._submit(tp, batch)

    async def _submit(self, tp: TopicPartition, batch: BatchBuilder) -> None:
        """Queue a batch, closed: nothing joins it later, so lingering would only delay it."""
        batch.close()
        delivery = await self._producer.send_batch(batch, tp.topic, partition=tp.partition)
        self._pending.append(PendingBatch(tp, batch.record_count(), delivery))

    async def flush(self) -> dict[TopicPartition, int]:
        """Wait for every queued batch; return the last offset written per partition.

        Offsets within one batch are contiguous, so the last one is the base
        offset plus the record count minus one.  The first send error is raised
        after every batch has settled.
        """
        pending, self._pending = self._pending, []
        deliveries = [asyncio.ensure_future(batch.delivery) for batch in pending]
        if deliveries:
            _, waiting = await asyncio.wait(deliveries, timeout=self.flush_timeout_s)
            if waiting:
                for delivery in waiting:  # a late failure is expected, not worth a warning
                    delivery.add_done_callback(_consume_outcome)
                raise KafkaTimeoutError(f"{len(waiting)} of {len(pending)} batches were not acknowledged within "
                                        f"{self.flush_timeout_s:.0f}s")
        results = [_outcome(delivery) for delivery in deliveries]
        if any(isinstance(r, FENCING_ERRORS) for r in results):
            raise TaskFencedError(f"producer {self.transactional_id!r} was fenced by a newer instance")
        last_offsets: dict[TopicPartition, int] = {}
        error: BaseException | None = None
        for batch, result in zip(pending, results, strict=True):
            if isinstance(result, BaseException):
                error = error or result
                continue
            last = result.offset + batch.count - 1
            last_offsets[batch.partition] = max(last, last_offsets.get(batch.partition, -1))
        if error is not None:
            raise error
        return last_offsets

    async def begin_transaction(self) -> None:
        with fencing_as_task_error(self.transactional_id):
            await self._producer.begin_transaction()

    async def send_offsets_to_transaction(self, offsets: Mapping[TopicPartition, int],
                                          group: str | GroupMetadata) -> None:
        """Commit offsets with the transaction: fenced by the group generation given GroupMetadata (KIP-447)."""
        with fencing_as_task_error(self.transactional_id):
            if isinstance(group, GroupMetadata):
                await send_offsets_with_generation(self._producer, offsets, group)
            else:
                await self._producer.send_offsets_to_transaction(keys_to_aiokafka(offsets), group)

    async def commit_transaction(self) -> None:
        """Commit after every queued batch is acknowledged; a failed send fails the commit."""
        with fencing_as_task_error(self.transactional_id):
            await self.flush()
            await self._producer.commit_transaction()

    async def abort_transaction(self) -> None:
        """Abort after the queued batches settle; their errors no longer matter."""
        with contextlib.suppress(Exception):
            await self.flush()
        try:
            await asyncio.wait_for(self._producer.abort_transaction(), ABORT_TIMEOUT_S)
        except TimeoutError:
            raise KafkaTimeoutError(f"producer {self.transactional_id!r} could not abort within "
                                    f"{ABORT_TIMEOUT_S:.0f}s") from None


def _outcome(delivery: asyncio.Future) -> Any:
    if delivery.cancelled():
        return asyncio.CancelledError()
    return delivery.exception() or delivery.result()


def _consume_outcome(delivery: asyncio.Future) -> None:
    if not delivery.cancelled():
        delivery.exception()


def append(batch: BatchBuilder, record: OutRecord) -> bool:
    """Add a record to the batch; False when the batch is full (an empty batch takes any record)."""
    metadata = batch.append(
        key=record.key, value=record.value, timestamp=record.timestamp, headers=list(record.headers)
    )
    return metadata is not None
