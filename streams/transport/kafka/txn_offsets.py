"""KIP-447 offset commits: transactional offsets fenced by the consumer group's generation.

aiokafka commits offsets inside a transaction with TxnOffsetCommit version 0,
which names the group but not the member: the group coordinator cannot tell a
worker that still owns its partitions from a zombie that lost them in a
rebalance.  Fencing then needs one transactional id per task.  Version 3 also
carries the member id, the generation id and the group instance id, so the
coordinator refuses offsets from a stale generation, and one transactional
producer per worker fences zombies.

The reading side is OffsetFetch version 7 with require_stable: the coordinator
reports the partitions whose offsets an open transaction is about to commit,
so a new owner waits for that transaction instead of starting from offsets
that are about to move.

Only the wire formats (from Kafka's message definitions, brokers 2.5 and
later) and the sending live here.  aiokafka encodes them, and its producer
keeps the transaction's state: this module adds the group to the producer's
open transaction and tells the producer so, then commits the offsets.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka import errors as kafka_errors
from aiokafka.client import AIOKafkaClient, ConnectionGroup, CoordinationType
from aiokafka.errors import IllegalOperation, IncompatibleBrokerVersion, ProducerFenced
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.transaction import AddOffsetsToTxnRequest
from aiokafka.protocol.types import (
    Boolean,
    CompactArray,
    CompactString,
    Int16,
    Int32,
    Int64,
    Schema,
    TaggedFields,
)

from streams.errors import GenerationFencedError, UnsupportedBrokerError
from streams.transport.base import GroupMetadata, TopicPartition

TXN_OFFSET_COMMIT, OFFSET_FETCH = 28, 9
GENERATION_VERSION, STABLE_FETCH_VERSION = 3, 7
NO_LEADER_EPOCH = -1

# Error codes this module acts on (aiokafka names only some of them).
NONE = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
REQUEST_TIMED_OUT = 7
COORDINATOR_LOAD_IN_PROGRESS = 14
COORDINATOR_NOT_AVAILABLE = 15
NOT_COORDINATOR = 16
ILLEGAL_GENERATION = 22
UNKNOWN_MEMBER_ID = 25
INVALID_PRODUCER_EPOCH = 47
CONCURRENT_TRANSACTIONS = 51
FENCED_INSTANCE_ID = 82
UNSTABLE_OFFSET_COMMIT = 88
PRODUCER_FENCED = 90

COORDINATOR_MOVED = frozenset({COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR, REQUEST_TIMED_OUT})
RETRIABLE = frozenset({COORDINATOR_LOAD_IN_PROGRESS, UNKNOWN_TOPIC_OR_PARTITION, CONCURRENT_TRANSACTIONS})
PRODUCER_STALE = frozenset({INVALID_PRODUCER_EPOCH, PRODUCER_FENCED})


class TxnOffsetCommitResponseV3(Response):
    API_KEY = TXN_OFFSET_COMMIT
    API_VERSION = GENERATION_VERSION
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("topics", CompactArray(
            ("name", CompactString("utf-8")),
            ("partitions", CompactArray(("partition_index", Int32), ("error_code", Int16), ("tags", TaggedFields))),
            ("tags", TaggedFields),
        )),
        ("tags", TaggedFields),
    )


class TxnOffsetCommitRequestV3(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = TXN_OFFSET_COMMIT
    API_VERSION = GENERATION_VERSION
    RESPONSE_TYPE = TxnOffsetCommitResponseV3
    SCHEMA = Schema(
        ("transactional_id", CompactString("utf-8")),
        ("group_id", CompactString("utf-8")),
        ("producer_id", Int64),
        ("producer_epoch", Int16),
        ("generation_id", Int32),
        ("member_id", CompactString("utf-8")),
        ("group_instance_id", CompactString("utf-8")),  # nullable
        ("topics", CompactArray(
            ("name", CompactString("utf-8")),
            ("partitions", CompactArray(
                ("partition_index", Int32),
                ("committed_offset", Int64),
                ("committed_leader_epoch", Int32),
                ("committed_metadata", CompactString("utf-8")),
                ("tags", TaggedFields),
            )),
            ("tags", TaggedFields),
        )),
        ("tags", TaggedFields),
    )


class OffsetFetchResponseV7(Response):
    API_KEY = OFFSET_FETCH
    API_VERSION = STABLE_FETCH_VERSION
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("topics", CompactArray(
            ("name", CompactString("utf-8")),
            ("partitions", CompactArray(
                ("partition_index", Int32),
                ("committed_offset", Int64),
                ("committed_leader_epoch", Int32),
                ("metadata", CompactString("utf-8")),
                ("error_code", Int16),
                ("tags", TaggedFields),
            )),
            ("tags", TaggedFields),
        )),
        ("error_code", Int16),
        ("tags", TaggedFields),
    )


class OffsetFetchRequestV7(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = OFFSET_FETCH
    API_VERSION = STABLE_FETCH_VERSION
    RESPONSE_TYPE = OffsetFetchResponseV7
    SCHEMA = Schema(
        ("group_id", CompactString("utf-8")),
        ("topics", CompactArray(
            ("name", CompactString("utf-8")),
            ("partition_indexes", CompactArray(Int32)),
            ("tags", TaggedFields),
        )),
        ("require_stable", Boolean),
        ("tags", TaggedFields),
    )


class BrokerWithoutKip447(UnsupportedBrokerError, IncompatibleBrokerVersion):
    """A broker before 2.5; the framework's error, and aiokafka's for an unsupported request version."""


def _require(versions: Mapping[int, tuple[int, int]], api_key: int, version: int, name: str) -> None:
    low, high = versions.get(api_key, (0, -1))
    if not low <= version <= high:
        raise BrokerWithoutKip447(
            f"the broker does not support {name} v{version} (KIP-447, Kafka 2.5 and later; it supports "
            f"v{low} to v{high}); use processing_guarantee='exactly_once', which needs no KIP-447")


class GenerationTxnOffsetCommit(Request[TxnOffsetCommitRequestV3]):
    """TxnOffsetCommit with the committing member's group generation."""

    API_KEY = TXN_OFFSET_COMMIT

    def __init__(self, transactional_id: str, producer_id: int, producer_epoch: int, group: GroupMetadata,
                 offsets: Mapping[TopicPartition, int]) -> None:
        self._fields = (transactional_id, group.group_id, producer_id, producer_epoch, group.generation_id,
                        group.member_id, group.group_instance_id, _by_topic(
                            offsets, lambda partition, offset: (partition, offset, NO_LEADER_EPOCH, "", {})), {})

    def prepare(self, versions: dict[int, tuple[int, int]]) -> TxnOffsetCommitRequestV3:
        _require(versions, TXN_OFFSET_COMMIT, GENERATION_VERSION, "TxnOffsetCommit")
        return self.build(TxnOffsetCommitRequestV3)

    def build(self, request_struct_class: type[TxnOffsetCommitRequestV3]) -> TxnOffsetCommitRequestV3:
        return request_struct_class(*self._fields)


class StableOffsetFetch(Request[OffsetFetchRequestV7]):
    """OffsetFetch that reports offsets pending in an open transaction instead of returning the old ones."""

    API_KEY = OFFSET_FETCH

    def __init__(self, group_id: str, partitions: Iterable[TopicPartition]) -> None:
        by_topic: dict[str, list[int]] = {}
        for tp in partitions:
            by_topic.setdefault(tp.topic, []).append(tp.partition)
        self._fields = (group_id, [(topic, sorted(ps), {}) for topic, ps in sorted(by_topic.items())], True, {})

    def prepare(self, versions: dict[int, tuple[int, int]]) -> OffsetFetchRequestV7:
        _require(versions, OFFSET_FETCH, STABLE_FETCH_VERSION, "OffsetFetch")
        return self.build(OffsetFetchRequestV7)

    def build(self, request_struct_class: type[OffsetFetchRequestV7]) -> OffsetFetchRequestV7:
        return request_struct_class(*self._fields)


def _by_topic(offsets: Mapping[TopicPartition, int], entry: Any) -> list:
    topics: dict[str, list] = {}
    for tp, offset in sorted(offsets.items()):
        topics.setdefault(tp.topic, []).append(entry(tp.partition, offset))
    return [(topic, partitions, {}) for topic, partitions in topics.items()]


STALE_MEMBER = frozenset({ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID})
STALE_MEMBER_NAMES = {ILLEGAL_GENERATION: "ILLEGAL_GENERATION", UNKNOWN_MEMBER_ID: "UNKNOWN_MEMBER_ID",
                      FENCED_INSTANCE_ID: "FENCED_INSTANCE_ID"}


def _raise_for(code: int, what: str) -> None:
    if code in PRODUCER_STALE:
        raise ProducerFenced()
    if code in STALE_MEMBER:
        raise GenerationFencedError(
            f"{what} refused with {STALE_MEMBER_NAMES[code]}: the group rebalanced without this member's "
            "generation, and its partitions may belong to another worker now")
    raise kafka_errors.for_code(code)(f"{what} failed with error code {code}")


class _Coordinator:
    """A coordinator's node id, looked up again when it moves; retries until a deadline."""

    def __init__(self, client: AIOKafkaClient, kind: CoordinationType, key: str, timeout_s: float,
                 backoff_s: float) -> None:
        self._client, self._kind, self._key = client, kind, key
        self._deadline = time.monotonic() + timeout_s
        self._backoff_s = backoff_s
        self._node: int | None = None

    async def send(self, request: Request) -> Any:
        while True:
            try:
                if self._node is None:
                    self._node = await self._client.coordinator_lookup(self._kind, self._key)
                return await self._client.send(self._node, request, group=ConnectionGroup.COORDINATION)
            except (kafka_errors.CoordinatorNotAvailableError, kafka_errors.NotCoordinatorError,
                    kafka_errors.NodeNotReadyError, kafka_errors.RequestTimedOutError,
                    kafka_errors.KafkaConnectionError):
                self._node = None
                await self.backoff()

    async def backoff(self) -> None:
        if time.monotonic() >= self._deadline:
            raise kafka_errors.KafkaTimeoutError(f"no answer from the coordinator of {self._key!r} in time")
        await asyncio.sleep(self._backoff_s)

    def moved(self) -> None:
        self._node = None


async def send_offsets_with_generation(producer: AIOKafkaProducer, offsets: Mapping[TopicPartition, int],
                                       group: GroupMetadata, timeout_s: float = 30.0,
                                       backoff_s: float = 0.1) -> None:
    """Add `group` to the producer's open transaction and commit `offsets` in it, fenced by the generation.

    Raises GenerationFencedError when the coordinator refuses the member or its
    generation, and aiokafka's ProducerFenced when a newer producer took the
    transactional id.  The offsets become visible when the transaction commits.
    """
    manager = producer._txn_manager  # the producer's transaction state, which aiokafka keeps per producer
    if manager is None or not manager.is_in_transaction():
        raise IllegalOperation("offsets join a transaction only while one is open")
    if not offsets:
        return
    if group.generation_id < 0 or not group.member_id:
        # The coordinator checks nothing for generation -1, the value of clients from before KIP-447; a
        # consumer whose membership lapsed (it froze past its session timeout) has reset to just that.
        raise GenerationFencedError(
            f"offsets refused here: this consumer is not a member of group {group.group_id!r} now (its membership "
            "lapsed), and its partitions may belong to another worker")
    transactional_id = manager.transactional_id
    coordinator = _Coordinator(producer.client, CoordinationType.TRANSACTION, transactional_id, timeout_s, backoff_s)
    while True:
        response = await coordinator.send(AddOffsetsToTxnRequest(
            transactional_id, manager.producer_id, manager.producer_epoch, group.group_id))
        if response.error_code == NONE:
            break
        if response.error_code in COORDINATOR_MOVED:
            coordinator.moved()
        elif response.error_code not in RETRIABLE:
            _raise_for(response.error_code, "AddOffsetsToTxn")
        await coordinator.backoff()
    # From here on the transaction holds the group: its commit must reach the coordinator even if
    # the producer wrote no record in it, so the producer has to know.
    manager.consumer_group_added(group.group_id)
    coordinator = _Coordinator(producer.client, CoordinationType.GROUP, group.group_id, timeout_s, backoff_s)
    pending = dict(offsets)
    while pending:
        response = await coordinator.send(GenerationTxnOffsetCommit(
            transactional_id, manager.producer_id, manager.producer_epoch, group, pending))
        retry = False
        for topic, partitions, _tags in response.topics:
            for partition, code, _ptags in partitions:
                tp = TopicPartition(topic, partition)
                if code == NONE:
                    pending.pop(tp, None)
                elif code in COORDINATOR_MOVED:
                    coordinator.moved()
                    retry = True
                elif code in RETRIABLE:
                    retry = True
                else:
                    _raise_for(code, "TxnOffsetCommit")
        if pending and retry:
            await coordinator.backoff()


async def fetch_stable_offsets(client: AIOKafkaClient, group_id: str, partitions: Iterable[TopicPartition],
                               timeout_s: float = 30.0,
                               backoff_s: float = 0.1) -> tuple[dict[TopicPartition, int | None], set[TopicPartition]]:
    """The group's committed offsets (None: none committed), and the partitions whose offsets are unstable.

    A partition is unstable while an open transaction holds offsets for it; its
    committed offset is left out until that transaction commits or aborts.
    """
    wanted = set(partitions)
    coordinator = _Coordinator(client, CoordinationType.GROUP, group_id, timeout_s, backoff_s)
    while True:
        response = await coordinator.send(StableOffsetFetch(group_id, wanted))
        if response.error_code in COORDINATOR_MOVED:
            coordinator.moved()
        elif response.error_code != NONE and response.error_code not in RETRIABLE:
            _raise_for(response.error_code, "OffsetFetch")
        elif response.error_code == NONE:
            break
        await coordinator.backoff()
    committed: dict[TopicPartition, int | None] = {}
    unstable: set[TopicPartition] = set()
    for topic, entries, _tags in response.topics:
        for partition, offset, _epoch, _metadata, code, _ptags in entries:
            tp = TopicPartition(topic, partition)
            if code == UNSTABLE_OFFSET_COMMIT:
                unstable.add(tp)
            elif code != NONE:
                _raise_for(code, "OffsetFetch")
            else:
                committed[tp] = offset if offset >= 0 else None
    return committed, unstable
