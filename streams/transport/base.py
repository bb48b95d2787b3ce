"""Protocols of the broker transport: consumer, producer, admin.

They are deliberately small.  Everything batch-shaped crosses this boundary as
a batch: one poll returns many records, one send_many takes many records, and
errors of individual sends surface at flush().
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from streams.record import OutRecord, RawRecord, TopicPartition


class GroupMetadata(NamedTuple):
    """A consumer's group membership, which a transaction's offsets carry to fence a stale member."""

    group_id: str
    member_id: str
    generation_id: int
    group_instance_id: str | None = None


@dataclass(frozen=True)
class TopicSpec:
    """A topic the application needs, with its partition count and configs."""

    name: str
    partitions: int
    replication_factor: int = 1
    config: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TopicInfo:
    name: str
    partitions: int
    config: Mapping[str, str]


class RebalanceListener(Protocol):
    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None: ...

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None: ...


class Consumer(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def subscribe(self, topics: Sequence[str], listener: RebalanceListener) -> None: ...

    def assign(self, partitions: Iterable[TopicPartition]) -> None: ...

    def assignment(self) -> set[TopicPartition]: ...

    async def poll(self, timeout_ms: int, max_records: int | None = None) -> dict[TopicPartition, list[RawRecord]]: ...

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None: ...

    async def committed(self, partition: TopicPartition) -> int | None: ...

    def seek(self, partition: TopicPartition, offset: int) -> None: ...

    async def seek_to_committed_or_reset(self, partitions: Iterable[TopicPartition]) -> set[TopicPartition]:
        """Position partitions at their committed offsets, or by the reset policy where none is committed.

        A read_committed consumer leaves out, and returns, the partitions whose
        committed offset is unstable: an open transaction holds offsets for them.
        """
        ...

    async def position(self, partition: TopicPartition) -> int: ...

    def pause(self, partitions: Iterable[TopicPartition]) -> None: ...

    def resume(self, partitions: Iterable[TopicPartition]) -> None: ...

    async def end_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]: ...

    async def caught_up(self, partitions: Iterable[TopicPartition]) -> set[TopicPartition]:
        """The partitions whose records, up to the end the broker last reported, poll has all returned."""
        ...

    async def beginning_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]: ...

    def group_metadata(self) -> GroupMetadata:
        """The current group membership; member id "" and generation -1 outside a group."""
        ...

    def request_rejoin(self) -> None:
        """Rejoin the group at the next poll, so kept partitions restart from their committed offsets."""
        ...


class Producer(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send_many(self, records: Iterable[OutRecord]) -> None:
        """Queue records for sending; waits only when the send buffer is full."""
        ...

    async def flush(self) -> dict[TopicPartition, int]:
        """Wait for every queued record; return the last offset written per partition.

        Raises the first send error, if any record failed.
        """
        ...

    async def begin_transaction(self) -> None: ...

    async def send_offsets_to_transaction(self, offsets: Mapping[TopicPartition, int],
                                          group: str | GroupMetadata) -> None:
        """Commit offsets with the open transaction.

        Given a consumer's GroupMetadata, the group coordinator refuses them from
        a stale generation (GenerationFencedError); given only a group id, it
        cannot tell, and fencing rests on the transactional id alone.
        """
        ...

    async def commit_transaction(self) -> None: ...

    async def abort_transaction(self) -> None: ...


class Admin(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def describe_topics(self, names: Iterable[str]) -> dict[str, TopicInfo | None]: ...

    async def create_topics(self, specs: Iterable[TopicSpec]) -> None:
        """Create the topics that do not exist yet; existing ones are left alone."""
        ...

    async def delete_topics(self, names: Iterable[str]) -> None: ...

    async def list_offsets(
        self, partitions: Iterable[TopicPartition], spec: str | int
    ) -> dict[TopicPartition, int]:
        """Offsets for "earliest", "latest" or a timestamp in ms (the first offset at or after it)."""
        ...

    async def committed_offsets(
        self, group_id: str, partitions: Iterable[TopicPartition]
    ) -> dict[TopicPartition, int | None]: ...

    async def set_committed_offsets(self, group_id: str, offsets: Mapping[TopicPartition, int]) -> None: ...

    async def active_members(self, group_id: str) -> list[str]: ...


class Transport(Protocol):
    """Makes consumers, producers and admin clients for one cluster."""

    def consumer(
        self,
        group_id: str | None,
        *,
        assignor: Any = None,
        isolation_level: str = "read_uncommitted",
        config: Mapping[str, Any] | None = None,
    ) -> Consumer: ...

    def producer(
        self, *, transactional_id: str | None = None, config: Mapping[str, Any] | None = None
    ) -> Producer: ...

    def admin(self) -> Admin: ...


class MemberSubscription(NamedTuple):
    topics: tuple[str, ...]
    user_data: bytes


class MemberAssignment(NamedTuple):
    partitions: tuple[TopicPartition, ...]
    user_data: bytes


class GroupAssignor(Protocol):
    """Pure group-assignment logic; a transport adapts it to its group protocol.

    The group leader calls assign(); every member reports subscription_user_data()
    when it joins and receives its own MemberAssignment through on_assignment().
    """

    name: str

    def subscription_user_data(self) -> bytes: ...

    def assign(
        self, members: Mapping[str, MemberSubscription], partitions_per_topic: Mapping[str, int]
    ) -> dict[str, MemberAssignment]: ...

    def on_assignment(self, assignment: MemberAssignment) -> None: ...
