"""Consumer groups among the consumers of one process: membership, generations, assignment.

This plays the part of Kafka's group coordinator with its eager rebalance
protocol.  A join, a leave, an expired session or a change in the partitions
of a subscribed topic starts a rebalance; every member then revokes what it
owns and rejoins with fresh subscription user data; once all have rejoined,
the leader's GroupAssignor divides the partitions and the generation moves on.
Each consumer drives its own part (streams.transport.embedded.membership); this class
only keeps the state, under the broker's lock.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from streams.transport.base import GroupAssignor, MemberAssignment, MemberSubscription, TopicPartition

NO_ASSIGNMENT = MemberAssignment((), b"")


class Status(enum.Enum):
    UNKNOWN = "unknown"  # not a member (never joined, left, or expired)
    REJOIN = "rejoin"  # a rebalance waits for this member to revoke and rejoin
    SYNC = "sync"  # a new generation holds an assignment this member has not taken yet
    STABLE = "stable"  # nothing to do


@dataclass
class Member:
    member_id: str
    topics: tuple[str, ...]
    assignor: GroupAssignor
    session_timeout_s: float
    rebalance_timeout_s: float
    loop: asyncio.AbstractEventLoop | None
    last_heartbeat: float = field(default_factory=time.monotonic)
    joined: bool = False
    user_data: bytes = b""
    generation: int = -1
    failure: BaseException | None = None  # raised by the assignor while this member led


@dataclass
class Group:
    members: dict[str, Member] = field(default_factory=dict)
    generation: int = 0
    rebalancing: bool = False
    rebalance_started: float = 0.0
    leader: str = ""
    assignments: dict[str, MemberAssignment] = field(default_factory=dict)
    topic_sizes: dict[str, int] = field(default_factory=dict)


class GroupCoordinator:
    """Group state of one broker; every method runs under the broker's lock."""

    def __init__(self, partitions_of: Callable[[str], int | None], notify: Callable[[], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.groups: dict[str, Group] = {}
        self._partitions_of = partitions_of
        self._notify = notify
        self._clock = clock

    def join(self, group_id: str, member: Member) -> None:
        group = self.groups.setdefault(group_id, Group())
        member.last_heartbeat = self._clock()
        group.members[member.member_id] = member
        if group.leader not in group.members:
            group.leader = member.member_id
        self._rebalance(group, [member])

    def leave(self, group_id: str, member_id: str) -> None:
        group = self.groups.get(group_id)
        if group is None or group.members.pop(member_id, None) is None:
            return
        self._forget(group, [member_id])

    def subscribe(self, group_id: str, member_id: str, topics: tuple[str, ...]) -> None:
        member = self._member(group_id, member_id)
        if member is not None and member.topics != topics:
            member.topics = topics
            self._rebalance(self.groups[group_id], [member])

    def request_rejoin(self, group_id: str, member_id: str) -> None:
        """The member wants its partitions handed out anew (it restarts them from committed offsets)."""
        member = self._member(group_id, member_id)
        if member is not None:
            self._rebalance(self.groups[group_id], [member])

    def heartbeat(self, group_id: str, member_id: str) -> None:
        member = self._member(group_id, member_id)
        if member is not None:
            member.last_heartbeat = self._clock()
        self.sweep()

    def status(self, group_id: str, member_id: str) -> tuple[Status, MemberAssignment, int]:
        """What the member has to do next, with the assignment and generation to take."""
        self.sweep()
        member = self._member(group_id, member_id)
        if member is None:
            return Status.UNKNOWN, NO_ASSIGNMENT, -1
        group = self.groups[group_id]
        if group.rebalancing:
            return (Status.STABLE if member.joined else Status.REJOIN), NO_ASSIGNMENT, -1
        if member.generation != group.generation:
            return Status.SYNC, group.assignments.get(member_id, NO_ASSIGNMENT), group.generation
        return Status.STABLE, NO_ASSIGNMENT, group.generation

    def rejoined(self, group_id: str, member_id: str, user_data: bytes) -> None:
        """The member revoked its partitions and joins the pending generation."""
        member = self._member(group_id, member_id)
        if member is None:
            return
        member.joined = True
        member.user_data = user_data
        member.last_heartbeat = self._clock()
        self._maybe_complete(self.groups[group_id])

    def take_failure(self, group_id: str, member_id: str) -> BaseException | None:
        """What the member's assignor raised while it led the last rebalance, once."""
        member = self._member(group_id, member_id)
        if member is None:
            return None
        failure, member.failure = member.failure, None
        return failure

    def synced(self, group_id: str, member_id: str, generation: int) -> None:
        member = self._member(group_id, member_id)
        if member is not None:
            member.generation = generation

    def may_commit(self, group_id: str, member_id: str | None) -> bool:
        """A member may commit for the generation it holds; anyone else only while the group is empty."""
        group = self.groups.get(group_id)
        if member_id is None:
            return group is None or not group.members
        member = self._member(group_id, member_id)
        return member is not None and member.generation == group.generation

    def holds_generation(self, group_id: str, member_id: str, generation: int) -> bool:
        """Whether the member belongs to the group at this generation, as KIP-447 offset commits require."""
        group = self.groups.get(group_id)
        return group is not None and self._member(group_id, member_id) is not None and group.generation == generation

    def members(self, group_id: str) -> list[str]:
        group = self.groups.get(group_id)
        return sorted(group.members) if group else []

    def topics_changed(self) -> None:
        """Topics were created or deleted: rebalance the groups whose subscriptions now look different."""
        for group in self.groups.values():
            if group.members and not group.rebalancing and self._sizes(group) != group.topic_sizes:
                self._rebalance(group, list(group.members.values()))

    def sweep(self) -> None:
        """Drop members whose session expired, whose event loop is gone, or who never rejoined in time."""
        now = self._clock()
        for group in self.groups.values():
            gone = [
                m.member_id for m in group.members.values()
                if (m.loop is not None and m.loop.is_closed())
                or now - m.last_heartbeat > m.session_timeout_s
                or (group.rebalancing and not m.joined and now - group.rebalance_started > m.rebalance_timeout_s)
            ]
            if gone:
                for member_id in gone:
                    del group.members[member_id]
                self._forget(group, gone)

    def _member(self, group_id: str, member_id: str) -> Member | None:
        group = self.groups.get(group_id)
        return group.members.get(member_id) if group else None

    def _forget(self, group: Group, member_ids: list[str]) -> None:
        for member_id in member_ids:
            group.assignments.pop(member_id, None)
        if group.leader not in group.members:
            group.leader = next(iter(group.members), "")
        if group.members:
            self._rebalance(group, [])
        else:
            group.rebalancing = False
            group.assignments = {}
            self._notify()

    def _rebalance(self, group: Group, rejoining: list[Member]) -> None:
        """Start a rebalance (everyone rejoins), or widen the running one to the given members."""
        if not group.rebalancing:
            group.rebalancing = True
            group.rebalance_started = self._clock()
            rejoining = list(group.members.values())
        for member in rejoining:
            member.joined = False
        self._maybe_complete(group)
        self._notify()

    def _sizes(self, group: Group) -> dict[str, int]:
        topics = sorted({t for m in group.members.values() for t in m.topics})
        sizes = {t: self._partitions_of(t) for t in topics}
        return {t: n for t, n in sizes.items() if n}

    def _maybe_complete(self, group: Group) -> None:
        if not group.rebalancing or not group.members or not all(m.joined for m in group.members.values()):
            return
        leader = group.members[group.leader]
        sizes = self._sizes(group)
        subscriptions = {m.member_id: MemberSubscription(m.topics, m.user_data) for m in group.members.values()}
        try:
            assignments = leader.assignor.assign(subscriptions, sizes)
        except Exception as error:
            leader.failure = error
            assignments = {}
        group.generation += 1
        group.rebalancing = False
        group.topic_sizes = sizes
        group.assignments = {member_id: assignments.get(member_id, NO_ASSIGNMENT) for member_id in group.members}
        self._notify()


class RoundRobinAssignor:
    """The default assignor: partitions in (topic, partition) order dealt to members in id order."""

    name = "roundrobin"

    def subscription_user_data(self) -> bytes:
        return b""

    def assign(self, members: Mapping[str, MemberSubscription],
               partitions_per_topic: Mapping[str, int]) -> dict[str, MemberAssignment]:
        member_ids = sorted(members)
        dealt: dict[str, list[TopicPartition]] = {m: [] for m in member_ids}
        turn = 0
        for topic in sorted(partitions_per_topic):
            takers = [m for m in member_ids if topic in members[m].topics]
            for partition in range(partitions_per_topic[topic]) if takers else ():
                while member_ids[turn % len(member_ids)] not in takers:
                    turn += 1
                dealt[member_ids[turn % len(member_ids)]].append(TopicPartition(topic, partition))
                turn += 1
        return {m: MemberAssignment(tuple(partitions), b"") for m, partitions in dealt.items()}

    def on_assignment(self, assignment: MemberAssignment) -> None:
        pass
