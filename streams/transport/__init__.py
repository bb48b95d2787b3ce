"""The narrow interface between the runtime and a message broker.

The runtime only talks to these protocols.  streams.transport.kafka implements them on
aiokafka; an embedded broker can implement them for tests and local runs.
"""

from streams.transport.base import (
    Admin,
    Consumer,
    GroupAssignor,
    MemberAssignment,
    MemberSubscription,
    OutRecord,
    Producer,
    RawRecord,
    RebalanceListener,
    TopicInfo,
    TopicPartition,
    TopicSpec,
    Transport,
)

__all__ = [
    "Admin",
    "Consumer",
    "GroupAssignor",
    "MemberAssignment",
    "MemberSubscription",
    "OutRecord",
    "Producer",
    "RawRecord",
    "RebalanceListener",
    "TopicPartition",
    "TopicInfo",
    "TopicSpec",
    "Transport",
]
