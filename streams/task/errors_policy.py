"""What happens to a record that cannot be deserialized or processed.

"dlq" (default) writes the original bytes to <app-id>-dlq with headers naming the
source and the error, "skip" logs and counts it, "fail" stops the worker without
committing past it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from streams.partitioner import partition_for
from streams.transport.base import OutRecord, RawRecord

MODES = ("dlq", "skip", "fail")


@dataclass(frozen=True)
class ErrorPolicy:
    mode: str
    dlq_topic: str

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"on_error must be one of {MODES}, got {self.mode!r}")

    def dead_letter(self, origin: RawRecord, exc: BaseException, operator: str,
                    partition_counts: Mapping[str, int]) -> OutRecord:
        headers = (
            *origin.headers,
            ("streams.error.topic", origin.topic.encode()),
            ("streams.error.partition", str(origin.partition).encode()),
            ("streams.error.offset", str(origin.offset).encode()),
            ("streams.error.operator", operator.encode()),
            ("streams.error.type", type(exc).__name__.encode()),
            ("streams.error.message", str(exc).encode(errors="replace")[:4096]),
        )
        partitions = partition_counts.get(self.dlq_topic, 1)
        partition = origin.partition % partitions if origin.key is None else partition_for(origin.key, partitions)
        return OutRecord(self.dlq_topic, partition, origin.key, origin.value, origin.timestamp, headers)
