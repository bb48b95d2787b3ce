"""Adapts a pure GroupAssignor to aiokafka's partition assignment strategy.

aiokafka looks assignors up by `name` and calls metadata(), assign() and
on_assignment() on whatever object it was given, so one adapter instance per
consumer carries the wrapped assignor's own state; nothing lives on the class.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from aiokafka.cluster import ClusterMetadata
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)

from streams.transport.base import GroupAssignor, MemberAssignment, MemberSubscription, TopicPartition

PROTOCOL_VERSION = 0


class AssignorAdapter(AbstractPartitionAssignor):
    """One GroupAssignor seen through aiokafka's consumer group protocol."""

    def __init__(self, assignor: GroupAssignor) -> None:
        self.assignor = assignor

    @property
    def name(self) -> str:
        return self.assignor.name

    def metadata(self, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:
        return ConsumerProtocolMemberMetadata(PROTOCOL_VERSION, sorted(topics), self.assignor.subscription_user_data())

    def assign(
        self, cluster: ClusterMetadata, members: Mapping[str, ConsumerProtocolMemberMetadata]
    ) -> dict[str, ConsumerProtocolMemberAssignment]:
        subscriptions = {
            member_id: MemberSubscription(tuple(metadata.subscription), metadata.user_data or b"")
            for member_id, metadata in members.items()
        }
        partitions_per_topic: dict[str, int] = {}
        for subscription in subscriptions.values():
            for topic in subscription.topics:
                partitions = cluster.partitions_for_topic(topic)
                if partitions:
                    partitions_per_topic[topic] = len(partitions)
        assignments = self.assignor.assign(subscriptions, partitions_per_topic)
        empty = MemberAssignment((), b"")
        # Every member needs an answer in SyncGroup, even one the assignor left out.
        return {member_id: to_protocol(assignments.get(member_id, empty)) for member_id in members}

    def on_assignment(self, assignment: ConsumerProtocolMemberAssignment) -> None:
        self.assignor.on_assignment(from_protocol(assignment))


def to_protocol(assignment: MemberAssignment) -> ConsumerProtocolMemberAssignment:
    by_topic: dict[str, list[int]] = {}
    for tp in assignment.partitions:
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    topics = [
        ConsumerProtocolMemberAssignment.Assignment(topic, sorted(partitions))
        for topic, partitions in sorted(by_topic.items())
    ]
    return ConsumerProtocolMemberAssignment(PROTOCOL_VERSION, topics, assignment.user_data)


def from_protocol(assignment: ConsumerProtocolMemberAssignment) -> MemberAssignment:
    partitions = tuple(
        TopicPartition(topic, partition) for topic, partitions in assignment.assignment for partition in partitions
    )
    return MemberAssignment(partitions, assignment.user_data or b"")
