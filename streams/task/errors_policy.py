"""What happens to a record that cannot be deserialized or processed.

"dlq" (default) writes the original bytes to <app-id>-dlq with headers naming the
source and the error, "skip" logs and counts it, "fail" stops the worker without
committing past it.

A dead letter must always be writable: one that the broker refuses fails the
commit, and the worker would process the same poison record again forever.  So
a dead letter larger than the dead-letter topic takes (max_record_bytes, which
the worker learns from the topic) is cut to fit, and the header
streams.error.truncated names what was cut and its original size.  Likewise a
dead letter stamped further ahead of the clock than the topic accepts
(max_ahead_ms, its message.timestamp.after.max.ms) is stamped with the current
time, its own timestamp kept in the header streams.error.timestamp.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from streams.partitioner import partition_for
from streams.record import Headers
from streams.transport.base import OutRecord, RawRecord

MODES = ("dlq", "skip", "fail")
TRUNCATED = "streams.error.truncated"
BATCH_OVERHEAD = 61 + 36
"""A record batch's header, plus the most a lone record's own framing (varints) can take."""
HEADER_OVERHEAD = 10
"""The most the two length varints of one header can take."""
CLOCK_MARGIN_MS = 60_000
"""How far the broker's clock may be ahead of this one when it checks message.timestamp.after.max.ms."""


@dataclass(frozen=True)
class ErrorPolicy:
    mode: str
    dlq_topic: str
    max_record_bytes: int | None = None
    max_ahead_ms: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"on_error must be one of {MODES}, got {self.mode!r}")

    @staticmethod
    def record_size(key: bytes | None, value: bytes | None, headers: Headers) -> int:
        """An upper bound of the bytes a record takes as a batch of its own, as the broker counts them."""
        size = BATCH_OVERHEAD + len(key or b"") + len(value or b"")
        for name, header_value in headers:
            size += HEADER_OVERHEAD + len(name.encode()) + len(header_value or b"")
        return size

    def dead_letter(self, origin: RawRecord, exc: BaseException, operator: str,
                    partition_counts: Mapping[str, int]) -> OutRecord:
        error_headers = (
            ("streams.error.topic", origin.topic.encode()),
            ("streams.error.partition", str(origin.partition).encode()),
            ("streams.error.offset", str(origin.offset).encode()),
            ("streams.error.operator", operator.encode()),
            ("streams.error.type", type(exc).__name__.encode()),
            ("streams.error.message", str(exc).encode(errors="replace")[:4096]),
        )
        timestamp = origin.timestamp
        if self.max_ahead_ms is not None:
            now = time.time_ns() // 1_000_000
            if timestamp - now > self.max_ahead_ms - min(CLOCK_MARGIN_MS, self.max_ahead_ms // 2):
                error_headers += (("streams.error.timestamp", str(timestamp).encode()),)
                timestamp = now
        key, value, headers = origin.key, origin.value, (*origin.headers, *error_headers)
        limit = self.max_record_bytes
        if limit is not None and self.record_size(key, value, headers) > limit:
            key, value, headers = self._truncated(origin, error_headers, limit)
        partitions = partition_counts.get(self.dlq_topic, 1)
        partition = origin.partition % partitions if origin.key is None else partition_for(origin.key, partitions)
        return OutRecord(self.dlq_topic, partition, key, value, timestamp, headers)

    def _truncated(self, origin: RawRecord, error_headers: Headers,
                   limit: int) -> tuple[bytes | None, bytes | None, Headers]:
        """Cut the value first, then the key, then drop the origin's own headers, until the letter fits."""
        key, value = origin.key or b"", origin.value or b""
        cuts = [f"value={len(value)}"]
        headers = (*origin.headers, *error_headers)
        for stage in ("value", "key", "headers"):
            if stage == "key":
                cuts.append(f"key={len(key)}")
            elif stage == "headers":
                cuts.append(f"headers={len(origin.headers)}")
                headers = error_headers
            note = (TRUNCATED, ",".join(cuts).encode())
            room = limit - self.record_size(None, None, (*headers, note))
            if stage == "value" and room >= len(key):
                return origin.key, value[:room - len(key)], (*headers, note)
            if stage != "value" and room >= 0:
                return key[:room], b"", (*headers, note)
        return b"", b"", (*headers, note)
