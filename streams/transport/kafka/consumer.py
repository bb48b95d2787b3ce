"""The Consumer protocol on aiokafka's AIOKafkaConsumer."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from typing import Any

import aiokafka
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.errors import IncompatibleBrokerVersion, NoOffsetForPartitionError

from streams.gcpause import gc_paused
from streams.transport.base import GroupAssignor, GroupMetadata, RawRecord, RebalanceListener, TopicPartition
from streams.transport.kafka.assignor import AssignorAdapter
from streams.transport.kafka.fetched import AS_RAW
from streams.transport.kafka.partitions import (
    all_from_aiokafka,
    all_to_aiokafka,
    keys_from_aiokafka,
    keys_to_aiokafka,
    to_aiokafka,
)
from streams.transport.kafka.txn_offsets import fetch_stable_offsets

DEFAULTS: Mapping[str, Any] = {"auto_offset_reset": "earliest", "max_partition_fetch_bytes": 4 << 20}
"""Over aiokafka's defaults: 4 MiB fetches per partition (not 1 MiB) made the stateless pipeline 1.1x faster
with 256 KiB producer batches (docs/performance.md, "Client defaults")."""


class KafkaConsumer:
    """A consumer whose offsets move only when the runtime commits them.

    Auto-commit is always off: the runtime commits offsets itself, inside or
    beside its transactions.  Anything in `config` is passed to aiokafka.
    """

    def __init__(
        self,
        brokers: str,
        group_id: str | None,
        *,
        assignor: GroupAssignor | None = None,
        isolation_level: str = "read_uncommitted",
        config: Mapping[str, Any] | None = None,
    ) -> None:
        options: dict[str, Any] = {**DEFAULTS, **(config or {})}
        options["enable_auto_commit"] = False
        options["key_deserializer"] = AS_RAW  # records arrive as RawRecords (fetched.py)
        if assignor is not None:
            options["partition_assignment_strategy"] = (AssignorAdapter(assignor),)
        self.group_id = group_id
        self.read_committed = isolation_level == "read_committed"
        self.reset_policy: str = options["auto_offset_reset"]
        self._isolation_level = isolation_level
        self._stable_reads = True
        self._group_instance_id: str | None = options.get("group_instance_id")
        self._listener: ListenerAdapter | None = None
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=brokers, group_id=group_id, isolation_level=isolation_level, **options
        )

    async def start(self) -> None:
        await self._consumer.start()

    async def stop(self) -> None:
        try:
            await self._consumer.stop()
        except asyncio.CancelledError:
            # aiokafka's fetcher, closing, cancels a fetch that is backing off after a
            # connection error and awaits it without catching the cancellation; the rest
            # of its stop is skipped.  The cancellation is ours only if this task was cancelled.
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
            await self._consumer._client.close()

    def subscribe(self, topics: Sequence[str], listener: RebalanceListener) -> None:
        self._listener = ListenerAdapter(listener)
        self._consumer.subscribe(list(topics), listener=self._listener)

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        self._consumer.assign(all_to_aiokafka(partitions))

    def assignment(self) -> set[TopicPartition]:
        return all_from_aiokafka(self._consumer.assignment())

    async def poll(self, timeout_ms: int, max_records: int | None = None) -> dict[TopicPartition, list[RawRecord]]:
        """Fetched records per partition; raises what the rebalance listener raised since the last poll.

        getmany parses fetched records into one object each, so the collector is
        held off while it does (streams/gcpause.py).  A pause must not span a
        wait, and getmany parses right after waiting for a fetch; so a poll that
        finds nothing fetched yet waits for a single record, then takes the rest
        with a zero timeout, which returns at once except during a rebalance.
        """
        if self._listener is not None:
            self._listener.raise_failure()
        batches = await self._fetched(max_records)
        if batches is None:
            return to_raw_batches(await self._consumer.getmany(timeout_ms=timeout_ms, max_records=max_records))
        if batches:
            return to_raw_batches(batches)
        first = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=1)
        if not first or max_records == 1:
            return to_raw_batches(first)
        rest = await self._fetched(None if max_records is None else max_records - 1)
        for tp, messages in (rest or {}).items():
            first.setdefault(tp, []).extend(messages)
        return to_raw_batches(first)

    async def _fetched(self, max_records: int | None) -> dict[Any, list[aiokafka.ConsumerRecord]] | None:
        """Records fetched already, parsed with the collector paused; None during a rebalance."""
        if self._consumer._subscription.reassignment_in_progress:
            return None
        with gc_paused():
            return await self._consumer.getmany(timeout_ms=0, max_records=max_records)

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit the next offset to read for each partition."""
        if offsets:
            await self._consumer.commit(keys_to_aiokafka(offsets))

    async def committed(self, partition: TopicPartition) -> int | None:
        return await self._consumer.committed(to_aiokafka(partition))

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self._consumer.seek(to_aiokafka(partition), offset)

    async def seek_to_committed_or_reset(self, partitions: Iterable[TopicPartition]) -> set[TopicPartition]:
        """Position partitions explicitly, because aiokafka's seek_to_committed skips offset 0.

        A read_committed consumer reads the offsets with require_stable (KIP-447)
        and returns, unpositioned, the partitions whose offsets an open
        transaction holds: an older owner's commit is still in flight.
        """
        tps = all_to_aiokafka(partitions)
        unstable: set[TopicPartition] = set()
        if not tps:
            return unstable
        committed: list[int | None] | None = None
        if self.group_id is None:
            committed = [None] * len(tps)
        elif self._isolation_level == "read_committed" and self._stable_reads:
            try:
                # the consumer's own client: its connections, and the broker versions it negotiated
                offsets, unstable = await fetch_stable_offsets(self._consumer._client, self.group_id,
                                                               all_from_aiokafka(tps))
                tps = [tp for tp in tps if tp not in unstable]
                committed = [offsets.get(tp) for tp in tps]
            except IncompatibleBrokerVersion:
                # A broker before 2.5: exactly_once (per-task producers) needs no stable reads, because
                # starting a task's producer ends the older owner's transaction first.
                self._stable_reads = False
        if committed is None:
            committed = await asyncio.gather(*(self._consumer.committed(tp) for tp in tps))
        uncommitted = []
        for tp, offset in zip(tps, committed, strict=True):
            if offset is None:
                uncommitted.append(tp)
            else:
                self._consumer.seek(tp, offset)
        if not uncommitted:
            return unstable
        if self.reset_policy == "earliest":
            await self._consumer.seek_to_beginning(*uncommitted)
        elif self.reset_policy == "latest":
            await self._consumer.seek_to_end(*uncommitted)
        else:
            raise NoOffsetForPartitionError(f"no committed offset for {uncommitted}")
        return unstable

    async def position(self, partition: TopicPartition) -> int:
        """The offset of the next record this consumer will fetch from the partition."""
        return await self._consumer.position(to_aiokafka(partition))

    async def caught_up(self, partitions: Iterable[TopicPartition]) -> set[TopicPartition]:
        """Partitions polled up to the end of the last fetch response (unknown before one: not caught up)."""
        found = set()
        for tp in partitions:
            atp = to_aiokafka(tp)
            end = self._consumer.last_stable_offset(atp) if self.read_committed else self._consumer.highwater(atp)
            if end is not None and end >= 0 and await self._consumer.position(atp) >= end:
                found.add(tp)
        return found

    def pause(self, partitions: Iterable[TopicPartition]) -> None:
        self._consumer.pause(*all_to_aiokafka(partitions))

    def resume(self, partitions: Iterable[TopicPartition]) -> None:
        self._consumer.resume(*all_to_aiokafka(partitions))

    async def end_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        return keys_from_aiokafka(await self._consumer.end_offsets(all_to_aiokafka(partitions)))

    async def beginning_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        return keys_from_aiokafka(await self._consumer.beginning_offsets(all_to_aiokafka(partitions)))

    def request_rejoin(self) -> None:
        """Rejoin the group at the next poll; partitions kept restart from their committed offsets."""
        coordinator = self._consumer._coordinator
        if coordinator is not None:
            coordinator.request_rejoin()

    def group_metadata(self) -> GroupMetadata:
        """The current membership, as a transaction's offsets carry it; member "" and generation -1 outside."""
        coordinator = self._consumer._coordinator
        member_id = getattr(coordinator, "member_id", None)
        if member_id is None or not member_id:
            return GroupMetadata(self.group_id or "", "", -1, self._group_instance_id)
        return GroupMetadata(self.group_id or "", member_id, coordinator.generation, self._group_instance_id)


class ListenerAdapter(ConsumerRebalanceListener):
    """Hands aiokafka's rebalance callbacks to our listener with our partition type.

    aiokafka only logs an exception raised by a listener, so the first one is
    kept here and re-raised from the consumer's next poll instead of being lost.
    """

    def __init__(self, listener: RebalanceListener) -> None:
        self.listener = listener
        self.failure: BaseException | None = None

    async def on_partitions_revoked(self, revoked: Iterable[aiokafka.TopicPartition]) -> None:
        await self._guard(self.listener.on_partitions_revoked(all_from_aiokafka(revoked)))

    async def on_partitions_assigned(self, assigned: Iterable[aiokafka.TopicPartition]) -> None:
        await self._guard(self.listener.on_partitions_assigned(all_from_aiokafka(assigned)))

    async def _guard(self, callback: Awaitable[None]) -> None:
        try:
            await callback
        except Exception as error:
            if self.failure is None:
                self.failure = error
            raise

    def raise_failure(self) -> None:
        failure, self.failure = self.failure, None
        if failure is not None:
            raise failure


def to_raw_batches(
    batches: Mapping[aiokafka.TopicPartition, list[RawRecord] | list[aiokafka.ConsumerRecord]],
) -> dict[TopicPartition, list[RawRecord]]:
    """getmany's result in the transport's types.

    The records are RawRecords already (fetched.py); only if aiokafka could not
    be made to build them are ConsumerRecords copied, as tuples built directly:
    RawRecord(...) would add a Python-level call per record.
    """
    result = {}
    new = tuple.__new__
    for tp, messages in batches.items():
        topic, partition = tp.topic, tp.partition
        if messages and type(messages[0]) is not RawRecord:
            with gc_paused():
                messages = [
                    new(RawRecord, (topic, partition, m.offset, m.timestamp, m.key, m.value,
                                    _headers(m.headers) if m.headers else ()))
                    for m in messages
                ]
        result[TopicPartition(topic, partition)] = messages
    return result


def _headers(headers: Iterable[tuple[str, bytes]]) -> tuple[tuple[str, bytes], ...]:
    return tuple((name, value) for name, value in headers)
