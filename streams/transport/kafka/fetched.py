"""Fetched records parsed straight into RawRecords, skipping aiokafka's ConsumerRecord.

aiokafka turns every fetched record into a ConsumerRecord (eleven fields, two
of them sizes computed per record), and the consumer then copied each into a
RawRecord: two objects per record, the largest single cost of a stateless
worker (docs/performance.md, "Reading fetched records").  aiokafka builds each
record through one method of its per-partition record iterator; a consumer
that passes `AS_RAW` as its key deserializer gets that method replaced, so
the iterator yields RawRecords and the rest of aiokafka's reading (CRC checks,
control batches, aborted transactions, positions) is unchanged.

The replacement is made by a subclass installed in aiokafka's fetcher module.
It changes nothing for consumers that do not pass `AS_RAW`; if aiokafka lacks
the method, nothing is installed and `AS_RAW` is a plain identity deserializer,
so records arrive as ConsumerRecords and are copied as before.
"""

from __future__ import annotations

from typing import Any

from aiokafka.consumer import fetcher

from streams.record import RawRecord


def AS_RAW(key: bytes | None) -> bytes | None:  # noqa: N802 - a marker, named like a constant
    """The key deserializer that asks for RawRecords; called only where they cannot be had."""
    return key


def _raw_record(tp: Any, record: Any, new: Any = tuple.__new__) -> RawRecord:
    headers = record.headers
    return new(RawRecord, (tp.topic, tp.partition, record.offset, record.timestamp, record.key, record.value,
                           tuple(headers) if headers else ()))


def _install() -> bool:
    original = fetcher.PartitionRecords
    if getattr(original, "yields_raw_records", False):
        return True
    if not callable(getattr(original, "_consumer_record", None)):
        return False

    class RawPartitionRecords(original):  # type: ignore[misc, valid-type]
        yields_raw_records = True

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            if self._key_deserializer is AS_RAW:
                self._consumer_record = _raw_record

    fetcher.PartitionRecords = RawPartitionRecords
    return True


INSTALLED = _install()
