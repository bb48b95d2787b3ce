"""Conversions between our TopicPartition and aiokafka's.

The two compare and hash alike, but aiokafka validates its arguments with
isinstance, so everything handed to it is converted first, and everything it
hands back is converted so callers only ever see one type.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

import aiokafka

from streams.transport.base import TopicPartition

V = TypeVar("V")


def to_aiokafka(partition: TopicPartition) -> aiokafka.TopicPartition:
    return aiokafka.TopicPartition(partition.topic, partition.partition)


def from_aiokafka(partition: aiokafka.TopicPartition) -> TopicPartition:
    return TopicPartition(partition.topic, partition.partition)


def all_to_aiokafka(partitions: Iterable[TopicPartition]) -> list[aiokafka.TopicPartition]:
    return [to_aiokafka(tp) for tp in partitions]


def all_from_aiokafka(partitions: Iterable[aiokafka.TopicPartition]) -> set[TopicPartition]:
    return {from_aiokafka(tp) for tp in partitions}


def keys_to_aiokafka(mapping: Mapping[TopicPartition, V]) -> dict[aiokafka.TopicPartition, V]:
    return {to_aiokafka(tp): value for tp, value in mapping.items()}


def keys_from_aiokafka(mapping: Mapping[aiokafka.TopicPartition, V]) -> dict[TopicPartition, V]:
    return {from_aiokafka(tp): value for tp, value in mapping.items()}
