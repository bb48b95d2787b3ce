"""The buffer of one side of a stream-stream join, as key spaces of one task store.

Like windows/store.py it lives in the task's ordinary store, so the write cache,
changelog, checkpoint and restore apply unchanged.  Three key spaces share it:

- b"r" + key length (4 bytes) + key + time + sequence: a buffered record; its
  value is one flag byte (whether it has joined anything yet) and the
  serialized value.  A key's records sort by time, so the records a join needs
  are one range scan; the sequence number keeps records with equal key and time
  apart.
- b"t" + time + key length + key + sequence: the time index.  Records leave the
  buffer in time order by one range scan of it from the front, which survives a
  restart with the store.
- b"m" + name: bookkeeping: the next sequence number, the side's store time (the
  largest timestamp it took, from which retention is measured) and, in the left
  side's store, the join's stream time.
- b"o" (left side's store only): the unmatched records of a left or outer join
  that wait for their window to close (PendingUnmatched).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

from streams.state.store import prefix_end
from streams.windows.store import NO_TIME, decode_time, encode_time

RECORDS = b"r"
INDEX = b"t"
META = b"m"
PENDING = b"o"
SEQUENCE_KEY = META + b"sequence"
STREAM_TIME_KEY = META + b"stream-time"
STORE_TIME_KEY = META + b"store-time"
PENDING_SINCE_KEY = META + b"pending-since"

_LENGTH = struct.Struct(">I")
_INT = struct.Struct(">q")
UNMATCHED, MATCHED = b"\x00", b"\x01"

Buffered = tuple[bytes, int, bool, bytes]
"""(record key in the store, or serialized record key, timestamp, joined yet, serialized value)."""


class JoinBuffer:
    """Time-ordered records of one join side; every write goes through the task store."""

    def __init__(self, store: Any) -> None:
        self.store = store
        raw = store.get(SEQUENCE_KEY)
        self.sequence = 0 if raw is None else _INT.unpack(raw)[0]
        self._saved_sequence = self.sequence
        raw = store.get(STORE_TIME_KEY)
        self.store_time = self._saved_store_time = NO_TIME if raw is None else _INT.unpack(raw)[0]
        self.oldest = self._first_indexed()

    def add(self, key: bytes, timestamp: int, value: bytes, matched: bool) -> None:
        length, time, seq = _LENGTH.pack(len(key)), encode_time(timestamp), _INT.pack(self.sequence)
        self.sequence += 1
        self.store.put(RECORDS + length + key + time + seq, (MATCHED if matched else UNMATCHED) + value)
        self.store.put(INDEX + time + length + key + seq, b"")
        if self.oldest is None or timestamp < self.oldest:
            self.oldest = timestamp
        if timestamp > self.store_time:
            self.store_time = timestamp

    def fetch(self, key: bytes, low: int, high: int) -> list[Buffered]:
        """Records of `key` with low <= time <= high, oldest first, as (store key, time, joined, value)."""
        prefix = RECORDS + _LENGTH.pack(len(key)) + key
        at = len(prefix)
        return [(rkey, decode_time(rkey, at), value[:1] == MATCHED, value[1:])
                for rkey, value in self.store.range(prefix + encode_time(low), prefix + encode_time(high + 1))]

    def mark_matched(self, rkey: bytes, value: bytes) -> None:
        self.store.put(rkey, MATCHED + value)

    def expire(self, cutoff: int) -> list[Buffered]:
        """Remove every record with time <= cutoff; returns them as (key, time, joined, value), oldest first."""
        if self.oldest is None or self.oldest > cutoff:
            return []
        get, delete = self.store.get, self.store.delete
        removed = []
        for ikey, _ in list(self.store.range(INDEX, INDEX + encode_time(cutoff + 1))):
            length = _LENGTH.unpack_from(ikey, 9)[0]
            key_end = 13 + length
            rkey = RECORDS + ikey[9:key_end] + ikey[1:9] + ikey[key_end:]
            value = get(rkey)
            delete(rkey)
            delete(ikey)
            if value is not None:
                removed.append((ikey[13:key_end], decode_time(ikey, 1), value[:1] == MATCHED, value[1:]))
        self.oldest = self._first_indexed()
        return removed

    def records(self) -> Iterator[Buffered]:
        """Every buffered record as (key, time, joined, value), in key order."""
        for rkey, value in self.store.range(RECORDS, prefix_end(RECORDS)):
            length = _LENGTH.unpack_from(rkey, 1)[0]
            yield rkey[5:5 + length], decode_time(rkey, 5 + length), value[:1] == MATCHED, value[1:]

    def stream_time(self) -> int:
        raw = self.store.get(STREAM_TIME_KEY)
        return NO_TIME if raw is None else _INT.unpack(raw)[0]

    def set_stream_time(self, t: int) -> None:
        self.store.put(STREAM_TIME_KEY, _INT.pack(t))

    def save(self) -> None:
        """Persist the sequence counter and the store time, if records were added since the last save."""
        if self.sequence != self._saved_sequence:
            self.store.put(SEQUENCE_KEY, _INT.pack(self.sequence))
            self._saved_sequence = self.sequence
        if self.store_time != self._saved_store_time:
            self.store.put(STORE_TIME_KEY, _INT.pack(self.store_time))
            self._saved_store_time = self.store_time

    def _first_indexed(self) -> int | None:
        for ikey, _ in self.store.range(INDEX, prefix_end(INDEX)):
            return decode_time(ikey, 1)
        return None


LEFT, RIGHT = b"\x01", b"\x00"


class PendingUnmatched:
    """Records of a left or outer join that found no match yet and wait for their window to close.

    Kept apart from the buffers because they leave at different times: a record
    leaves here when it is matched or its unmatched result is emitted, and stays in
    its buffer until retention.  One entry per (time, side, key) holds every value
    with that time and key, so a match removes them together (they match the same
    records).  Entries sort by time, then right before left, then key: the order in
    which they are emitted.

    since is the oldest time the join knows to be waiting here (None: unknown, look
    at once); the join looks for closed entries only once that one has closed.
    """

    def __init__(self, store: Any) -> None:
        self.store = store
        raw = store.get(PENDING_SINCE_KEY)
        self.since: int | None = None if raw is None else _INT.unpack(raw)[0]
        self._saved_since = self.since

    def save(self) -> None:
        if self.since != self._saved_since:
            if self.since is None:
                self.store.delete(PENDING_SINCE_KEY)
            else:
                self.store.put(PENDING_SINCE_KEY, _INT.pack(self.since))
            self._saved_since = self.since

    @staticmethod
    def _key(side: bytes, key: bytes, timestamp: int) -> bytes:
        return PENDING + encode_time(timestamp) + side + _LENGTH.pack(len(key)) + key

    def add(self, side: bytes, key: bytes, timestamp: int, value: bytes) -> None:
        pkey = self._key(side, key, timestamp)
        held = self.store.get(pkey) or b""
        self.store.put(pkey, held + _LENGTH.pack(len(value)) + value)

    def discard(self, side: bytes, key: bytes, timestamp: int) -> None:
        pkey = self._key(side, key, timestamp)
        if self.store.get(pkey) is not None:
            self.store.delete(pkey)

    def entries(self) -> Iterator[tuple[bytes, int, bytes, bytes, list[bytes]]]:
        """(entry key, time, side, record key, values), in emission order."""
        for pkey, held in self.store.range(PENDING, prefix_end(PENDING)):
            length = _LENGTH.unpack_from(pkey, 10)[0]
            values, at = [], 0
            while at < len(held):
                size = _LENGTH.unpack_from(held, at)[0]
                values.append(held[at + 4:at + 4 + size])
                at += 4 + size
            yield pkey, decode_time(pkey, 1), pkey[9:10], pkey[14:14 + length], values

    def remove(self, pkey: bytes) -> None:
        self.store.delete(pkey)
