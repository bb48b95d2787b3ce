"""The window store: windows, their time index and the stream time, as key spaces of one task store.

Everything lives in the task's ordinary store (a TaskStore), so the write
cache, changelog, checkpoint and restore apply to windows unchanged.  Three
key spaces share it:

- b"w" + key length (4 bytes) + key + window time(s): a window's value, the
  newest record timestamp in it (8 bytes) followed by the serialized aggregate.
  Time and sliding windows append their start; sessions append end then start,
  so a key's sessions sort by end (which is also start order, as a key's
  sessions never overlap).  The length prefix keeps a key's windows one exact
  prefix even when one serialized key is a prefix of another.
- b"t" + index time + the window key without its b"w": the time index.
  Retention deletes by one range scan of it from the front, and final
  emission finds the windows due to close in it.  The index time is the first
  time in the window key, so an entry is derived from its window: index
  entries are written locally only (put_local), never to the changelog, and
  restore derives them again from the windows it replays (with_index).  They
  are committed and checkpointed with the windows, so they survive a restart.
- b"m" + name: per-store bookkeeping: the stream time, and the store time (the
  largest index time written), from which retention is measured.

Times are stored big-endian with the sign bit flipped so that negative times
sort first.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from typing import Any

from streams.state.store import Change, prefix_end

WINDOWS = b"w"
INDEX = b"t"
META = b"m"
STREAM_TIME_KEY = META + b"stream-time"
STORE_TIME_KEY = META + b"store-time"

_OFFSET = 1 << 63
_TIME = struct.Struct(">Q")
_LENGTH = struct.Struct(">I")
_NEWEST = struct.Struct(">q")
_TIME_MAX = (1 << 64) - 1

NO_TIME = -(1 << 62)
"""Stream time before any record: far below any real timestamp, yet safe to subtract from."""


def encode_time(t: int) -> bytes:
    """A time as 8 sortable bytes; times beyond the 64-bit range are clamped (for open scan bounds)."""
    shifted = t + _OFFSET
    return _TIME.pack(0 if shifted < 0 else _TIME_MAX if shifted > _TIME_MAX else shifted)


def pack_time(t: int) -> bytes:
    """encode_time for a record's own times, which Kafka already limits to 64 bits."""
    return _TIME.pack(t + _OFFSET)


unpack_newest = _NEWEST.unpack_from
"""The newest record timestamp at the head of a stored window value."""


def decode_time(data: bytes, offset: int = 0) -> int:
    return _TIME.unpack_from(data, offset)[0] - _OFFSET


def key_prefix(key: bytes) -> bytes:
    """The prefix shared by every window of one serialized key."""
    return WINDOWS + _LENGTH.pack(len(key)) + key


def split_window_key(wkey: bytes) -> tuple[bytes, int, int | None]:
    """(serialized key, first time, second time or None) of a window key."""
    length = _LENGTH.unpack_from(wkey, 1)[0]
    key_end = 5 + length
    first = decode_time(wkey, key_end)
    second = decode_time(wkey, key_end + 8) if len(wkey) >= key_end + 16 else None
    return wkey[5:key_end], first, second


def index_key(wkey: bytes) -> bytes:
    """A window's time index entry: its first time (start, or a session's end), then the window key."""
    at = 5 + _LENGTH.unpack_from(wkey, 1)[0]
    return INDEX + wkey[at:at + 8] + wkey[1:]


def with_index(changes: Iterable[Change]) -> Iterator[Change]:
    """Changelog changes plus the index entries they imply, for restore (a store spec's "derive" option).

    A window written adds its entry and a window deleted removes it; both are
    idempotent, so replaying a changelog again over a partly restored store is safe.
    Changelogs written before the index left the changelog hold index entries of
    their own, which pass through unchanged.
    """
    for key, value in changes:
        yield key, value
        if key[:1] == WINDOWS:
            yield index_key(key), None if value is None else b""


class WindowStore:
    """Window-shaped access to a task store of bytes; every write goes through that store."""

    def __init__(self, store: Any) -> None:
        self.store = store

    # -- windows

    def get(self, wkey: bytes) -> tuple[int, bytes] | None:
        """(newest record timestamp, serialized aggregate) of a window, or None."""
        value = self.store.get(wkey)
        if value is None:
            return None
        return _NEWEST.unpack_from(value)[0], value[8:]

    def put(self, wkey: bytes, newest: int, aggregate: bytes) -> None:
        self.store.put(wkey, _NEWEST.pack(newest) + aggregate)

    def windows(self, start: bytes, end: bytes) -> Iterator[tuple[bytes, int, bytes]]:
        """(window key, newest timestamp, aggregate) for window keys in [start, end)."""
        unpack = _NEWEST.unpack_from
        for wkey, value in self.store.range(start, end):
            yield wkey, unpack(value)[0], value[8:]

    def all_windows(self, prefix: bytes = WINDOWS) -> Iterator[tuple[bytes, int, bytes]]:
        return self.windows(prefix, prefix_end(prefix))

    # -- the time index

    def add_index(self, index_time: int, wkey: bytes) -> None:
        """Index a new window; local only, as restore derives the entry from the window (with_index)."""
        self.store.put_local(INDEX + encode_time(index_time) + wkey[1:], b"")

    def remove(self, index_time: int, wkey: bytes) -> None:
        """Delete a window and its index entry."""
        self.store.delete(wkey)
        self.store.put_local(INDEX + encode_time(index_time) + wkey[1:], None)

    def indexed(self, low: int | None, high: int | None) -> Iterator[tuple[int, bytes]]:
        """(index time, window key) with low <= index time <= high, in index order; None is open."""
        start = INDEX if low is None else INDEX + encode_time(low)
        end = prefix_end(INDEX) if high is None else INDEX + encode_time(high + 1)
        for tkey, _ in self.store.range(start, end):
            yield decode_time(tkey, 1), WINDOWS + tkey[9:]

    def first_indexed_after(self, time: int) -> int | None:
        """The smallest index time above `time`, or None if there is none."""
        for index_time, _ in self.indexed(time + 1, None):
            return index_time
        return None

    def expire(self, low: int | None, cutoff: int) -> int:
        """Delete every window whose index time lies in [low, cutoff]; returns how many."""
        doomed = list(self.indexed(low, cutoff))
        delete, put_local = self.store.delete, self.store.put_local
        for index_time, wkey in doomed:
            delete(wkey)
            put_local(INDEX + encode_time(index_time) + wkey[1:], None)
        return len(doomed)

    # -- bookkeeping

    def stream_time(self) -> int:
        raw = self.store.get(STREAM_TIME_KEY)
        return NO_TIME if raw is None else _NEWEST.unpack(raw)[0]

    def set_stream_time(self, t: int) -> None:
        self.store.put(STREAM_TIME_KEY, _NEWEST.pack(t))

    def store_time(self) -> int | None:
        """The largest index time written, or None if not recorded."""
        raw = self.store.get(STORE_TIME_KEY)
        return None if raw is None else _NEWEST.unpack(raw)[0]

    def set_store_time(self, t: int) -> None:
        self.store.put(STORE_TIME_KEY, _NEWEST.pack(t))
