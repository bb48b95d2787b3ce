"""The Consumer protocol on the embedded broker.

Positions live in the consumer, committed offsets in the broker.  A position
is resolved when first needed (the committed offset, else the reset policy),
and reset again if it falls outside the log, as a Kafka consumer does.  A poll
reads straight from the partition logs: it returns at once when records are
there and otherwise waits until the broker changes or the timeout passes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aiokafka.errors import (
    CommitFailedError,
    IllegalOperation,
    IllegalStateError,
    NoOffsetForPartitionError,
    UnknownTopicOrPartitionError,
)

from streams.transport.base import GroupAssignor, GroupMetadata, RawRecord, RebalanceListener, TopicPartition
from streams.transport.embedded.broker import EmbeddedBroker
from streams.transport.embedded.config import ConsumerSettings
from streams.transport.embedded.groups import RoundRobinAssignor
from streams.transport.embedded.membership import Membership
from streams.transport.embedded.registry import open_broker

ISOLATION_LEVELS = ("read_uncommitted", "read_committed")


class EmbeddedConsumer:
    """A consumer whose offsets move only when it commits them (there is no auto-commit)."""

    def __init__(
        self,
        url: str,
        group_id: str | None,
        *,
        assignor: GroupAssignor | None = None,
        isolation_level: str = "read_uncommitted",
        config: Mapping[str, Any] | None = None,
    ) -> None:
        if isolation_level not in ISOLATION_LEVELS:
            raise ValueError(f"isolation_level must be one of {ISOLATION_LEVELS}, not {isolation_level!r}")
        self.url = url
        self.group_id = group_id
        self.settings = ConsumerSettings.from_config(config)
        self.reset_policy = self.settings.auto_offset_reset
        self.read_committed = isolation_level == "read_committed"
        self._assignor = assignor or RoundRobinAssignor()
        self._broker: EmbeddedBroker | None = None
        self._topics: tuple[str, ...] | None = None
        self._listener: RebalanceListener | None = None
        self._membership: Membership | None = None
        self._positions: dict[TopicPartition, int | None] = {}
        self._paused: set[TopicPartition] = set()
        self._fetching = False
        self._turn = 0
        self._assignments = 0  # counts assignment changes, so a poll can tell one happened while it waited

    async def start(self) -> None:
        if self._broker is not None:
            return
        self._broker = open_broker(self.url)
        if self._topics is not None:
            self._start_subscription()

    async def stop(self) -> None:
        if self._membership is not None:
            await self._membership.stop()
            self._membership = None
        self._positions.clear()
        self._fetching = False
        self._broker = None

    # -- what to read

    def subscribe(self, topics: Sequence[str], listener: RebalanceListener) -> None:
        if self._topics is None and self._positions:
            raise IllegalStateError("subscription to topics and manual assignment are mutually exclusive")
        if self.group_id is None:
            raise IllegalOperation("subscribe() needs a group_id; without one, use assign()")
        self._topics = tuple(dict.fromkeys(topics))
        self._listener = listener
        if self._broker is None:
            return
        if self._membership is None:
            self._start_subscription()
        else:
            self._membership.change_topics(self._topics, listener)

    def _start_subscription(self) -> None:
        assert self._broker is not None and self.group_id is not None and self._topics is not None
        self._membership = Membership(self, self._broker, self.group_id, self._topics, self._listener,
                                      self._assignor, self.settings)
        self._membership.start()

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        if self._topics is not None:
            raise IllegalStateError("subscription to topics and manual assignment are mutually exclusive")
        self._positions = {TopicPartition(*tp): None for tp in partitions}
        self._paused &= set(self._positions)
        self._fetching = True
        self._assignments += 1

    def assignment(self) -> set[TopicPartition]:
        return set(self._positions)

    def _release_assignment(self) -> set[TopicPartition]:
        """Give up every partition before a rebalance; returns what was held."""
        released = set(self._positions)
        self._positions = {}
        self._paused.clear()
        self._fetching = False
        self._assignments += 1
        return released

    def _take_assignment(self, partitions: set[TopicPartition]) -> None:
        """Hold new partitions; fetching waits until on_partitions_assigned has returned."""
        self._positions = {tp: None for tp in sorted(partitions)}
        self._fetching = False
        self._assignments += 1

    def _open_fetching(self) -> None:
        self._fetching = True
        if self._broker is not None:
            self._broker.notifier.notify()

    # -- reading

    async def poll(self, timeout_ms: int, max_records: int | None = None) -> dict[TopicPartition, list[RawRecord]]:
        """Records per partition; raises what the rebalance listener raised since the last poll.

        A poll during which the assignment changed returns nothing: the caller
        may not have seen the rebalance yet, and the next poll reads from the
        positions the new assignment set.
        """
        broker = self._started()
        assignments = self._assignments
        await asyncio.sleep(0)  # a poll always lets the rest of the loop run, as a network poll would
        limit = max_records or self.settings.max_poll_records
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            if self._membership is not None:
                self._membership.raise_failure()
            if self._assignments != assignments:
                return {}
            seen = broker.notifier.version
            broker.maybe_clean()
            batches = self._fetch(broker, limit)
            remaining = deadline - time.monotonic()
            if batches or remaining <= 0:
                return batches
            await broker.notifier.wait(seen, remaining)

    def _fetch(self, broker: EmbeddedBroker, limit: int) -> dict[TopicPartition, list[RawRecord]]:
        if not self._fetching:
            return {}
        partitions = [tp for tp in self._positions if tp not in self._paused]
        if not partitions:
            return {}
        self._turn = (self._turn + 1) % len(partitions)
        batches: dict[TopicPartition, list[RawRecord]] = {}
        with broker.lock:
            for tp in partitions[self._turn:] + partitions[:self._turn]:
                if limit <= 0:
                    break
                try:
                    position = self._resolve(broker, tp)
                    records, self._positions[tp] = broker.fetch(tp, position, limit, self.read_committed)
                except UnknownTopicOrPartitionError:
                    continue  # deleted, or not created yet
                if records:
                    batches[tp] = records
                    limit -= len(records)
        return batches

    def _resolve(self, broker: EmbeddedBroker, tp: TopicPartition) -> int:
        """The partition's position: kept, else committed, else by the reset policy; reset when out of range."""
        position = self._positions.get(tp)
        if position is None and self.group_id is not None:
            position = broker.committed(self.group_id, tp)
        if position is None or not broker.log_start(tp) <= position <= broker.end_offset(tp):
            position = self._reset(broker, tp)
        self._positions[tp] = position
        return position

    def _reset(self, broker: EmbeddedBroker, tp: TopicPartition) -> int:
        if self.reset_policy == "earliest":
            return broker.log_start(tp)
        if self.reset_policy == "latest":
            return broker.end_offset(tp, self.read_committed)
        raise NoOffsetForPartitionError(f"no valid offset for {tp} and auto_offset_reset is 'none'")

    # -- offsets

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit the next offset to read for each partition."""
        if not offsets:
            return
        broker = self._started()
        if self.group_id is None:
            raise IllegalOperation("commit() needs a group_id")
        with broker.lock:
            member_id = self._membership.member_id if self._membership is not None else None
            if not broker.groups.may_commit(self.group_id, member_id):
                raise CommitFailedError(
                    f"group {self.group_id} rebalanced, or has members while this consumer is not one of them; "
                    "the offsets were not committed")
            broker.commit_offsets(self.group_id, {TopicPartition(*tp): offset for tp, offset in offsets.items()})

    async def committed(self, partition: TopicPartition) -> int | None:
        broker = self._started()
        if self.group_id is None:
            raise IllegalOperation("committed() needs a group_id")
        return broker.committed(self.group_id, TopicPartition(*partition))

    def seek(self, partition: TopicPartition, offset: int) -> None:
        tp = self._assigned(partition)
        if not isinstance(offset, int) or offset < 0:
            raise ValueError(f"offset must be a non-negative int, not {offset!r}")
        self._positions[tp] = offset

    async def seek_to_committed_or_reset(self, partitions: Iterable[TopicPartition]) -> set[TopicPartition]:
        """Position partitions; a read_committed consumer returns, unpositioned, those whose offsets an open
        transaction holds."""
        broker = self._started()
        unstable: set[TopicPartition] = set()
        with broker.lock:
            pending = broker.pending_offsets(self.group_id) if self.group_id and self.read_committed else set()
            for partition in partitions:
                tp = self._assigned(partition)
                if tp in pending:
                    unstable.add(tp)
                    continue
                committed = broker.committed(self.group_id, tp) if self.group_id is not None else None
                self._positions[tp] = committed if committed is not None else self._reset(broker, tp)
        return unstable

    async def position(self, partition: TopicPartition) -> int:
        """The offset of the next record this consumer will read from the partition."""
        broker = self._started()
        tp = self._assigned(partition)
        with broker.lock:
            return self._resolve(broker, tp)

    def pause(self, partitions: Iterable[TopicPartition]) -> None:
        self._paused.update(self._assigned(tp) for tp in partitions)

    def resume(self, partitions: Iterable[TopicPartition]) -> None:
        self._paused.difference_update(TopicPartition(*tp) for tp in partitions)
        if self._broker is not None:
            self._broker.notifier.notify()

    async def end_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """High watermarks, or last stable offsets for a read_committed consumer."""
        broker = self._started()
        return {TopicPartition(*tp): broker.end_offset(TopicPartition(*tp), self.read_committed) for tp in partitions}

    async def caught_up(self, partitions: Iterable[TopicPartition]) -> set[TopicPartition]:
        """Partitions read up to their end (last stable offset for a read_committed consumer)."""
        broker = self._started()
        found = set()
        with broker.lock:
            for partition in partitions:
                tp = self._assigned(partition)
                if self._resolve(broker, tp) >= broker.end_offset(tp, self.read_committed):
                    found.add(tp)
        return found

    async def beginning_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        broker = self._started()
        return {TopicPartition(*tp): broker.log_start(TopicPartition(*tp)) for tp in partitions}

    def request_rejoin(self) -> None:
        """Rebalance the group; partitions this consumer gets back restart from their committed offsets."""
        if self._membership is not None:
            self._membership.request_rejoin()

    def group_metadata(self) -> GroupMetadata:
        """The membership once this consumer holds an assignment of its group, else member "" and generation -1."""
        membership = self._membership
        if membership is None or membership.generation < 0:
            return GroupMetadata(self.group_id or "", "", -1)
        return GroupMetadata(self.group_id or "", membership.member_id, membership.generation)

    def _assigned(self, partition: TopicPartition) -> TopicPartition:
        tp = TopicPartition(*partition)
        if tp not in self._positions:
            raise IllegalStateError(f"no current assignment for partition {tp}")
        return tp

    def _started(self) -> EmbeddedBroker:
        if self._broker is None:
            raise IllegalStateError("the consumer is not started")
        self._broker.check_open()
        return self._broker
