"""Transactional producers on the embedded broker: epochs for fencing, and what each open transaction holds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from streams.transport.base import TopicPartition
from streams.transport.embedded.errors import ProducerFencedError


@dataclass
class OpenTransaction:
    """Offsets of the records a transaction wrote, and the group offsets it will commit."""

    records: dict[TopicPartition, list[int]] = field(default_factory=dict)
    offsets: dict[str, dict[TopicPartition, int]] = field(default_factory=dict)


class Transactions:
    """Every transactional id's epoch and open transaction; guarded by the broker's lock.

    A producer starting with a transactional id bumps its epoch; a producer
    holding an older epoch is a zombie, and everything it tries raises
    ProducerFencedError, as fencing does on Kafka.
    """

    def __init__(self, epochs: Mapping[str, int]) -> None:
        self.epochs: dict[str, int] = dict(epochs)
        self.open: dict[str, OpenTransaction] = {}

    def check(self, transactional_id: str, epoch: int) -> None:
        if self.epochs.get(transactional_id) != epoch:
            raise ProducerFencedError(f"producer {transactional_id!r} was fenced by a newer instance")

    def bump(self, transactional_id: str) -> int:
        epoch = self.epochs.get(transactional_id, -1) + 1
        self.epochs[transactional_id] = epoch
        return epoch

    def current(self, transactional_id: str) -> OpenTransaction:
        return self.open.setdefault(transactional_id, OpenTransaction())

    def forget_topic(self, topic: str) -> None:
        for transaction in self.open.values():
            for tp in [tp for tp in transaction.records if tp.topic == topic]:
                del transaction.records[tp]
