"""A versioned key-value store: every key's values with the times they were valid, for a history retention.

A version written at time t is valid from t until the next version's time.  A
put lands in its place in the history whatever order puts arrive in, and
get(key, as_of) finds the version valid at as_of.  The store keeps the time of
its newest put (its stream time); a put older than stream time - retention is
refused, a get older than that answers None, and versions that stopped being
valid before it are deleted.

Like the window store, it lives in an ordinary task store (write cache,
changelog and restore unchanged), in three key spaces:

- b"v" + key length (4 bytes) + key + valid-from time, in descending order
  (so the first entry at or after a time is the version valid then): a flag
  byte (1 for a value, 0 for a delete) and the value;
- b"x" + expiry time + key length + key + valid-from: the expiry index.  A
  version expires at its valid-to time; the latest version never expires,
  unless it is a delete, which expires at its own time;
- b"m" + name: the stream time.
"""

from __future__ import annotations

import struct
import weakref
from collections.abc import Iterator
from typing import Any

from streams.state.store import prefix_end

VERSIONED_KIND = "versioned"
"""The StoreSpec kind of a versioned table's history store."""

VERSIONS, EXPIRY, META = b"v", b"x", b"m"
STREAM_TIME_KEY = META + b"stream-time"
NO_TIME = -(1 << 62)
VALUE, DELETED = b"\x01", b"\x00"

_U64 = struct.Struct(">Q")
_I64 = struct.Struct(">q")
_LENGTH = struct.Struct(">I")
_FLIP = 1 << 63
_SHARED: weakref.WeakKeyDictionary[Any, VersionedStore] = weakref.WeakKeyDictionary()

DROPPED, LATEST, HISTORICAL = "dropped", "latest", "historical"
"""What a put did: refused (older than the history), became the key's latest version, or went into its past."""


def _ascending(t: int) -> bytes:
    return _U64.pack(t + _FLIP)


def _descending(t: int) -> bytes:
    return _U64.pack(_FLIP - 1 - t)


def _from_descending(data: bytes, offset: int) -> int:
    return _FLIP - 1 - _U64.unpack_from(data, offset)[0]


class VersionedStore:
    """Versioned access to a task store of bytes; every write goes through that store."""

    def __init__(self, store: Any, retention: int) -> None:
        self.store = store
        self.retention = retention
        raw = store.get(STREAM_TIME_KEY)
        self.stream_time = NO_TIME if raw is None else _I64.unpack(raw)[0]
        self._saved_time = self.stream_time
        self._next_expiry = self._first_expiry()

    @classmethod
    def of(cls, store: Any, retention: int) -> VersionedStore:
        """The one VersionedStore of a task store, shared by the processors that read and write it."""
        versioned = _SHARED.get(store)
        if versioned is None:
            versioned = _SHARED[store] = cls(store, retention)
        return versioned

    # -- reads

    def get(self, key: bytes, as_of: int | None = None) -> bytes | None:
        """The value valid at as_of (the latest one if None); None if deleted, absent or older than the history."""
        prefix = self._prefix(key)
        if as_of is None:
            start = prefix
        elif as_of < self.stream_time - self.retention:
            return None
        else:
            start = prefix + _descending(as_of)
        for _, entry in self.store.range(start, prefix_end(prefix)):
            return entry[1:] if entry[:1] == VALUE else None
        return None

    def latest_items(self) -> Iterator[tuple[bytes, bytes]]:
        """(key, latest value) of every key whose newest version is not a delete, in key order."""
        previous = None
        for vkey, entry in self.store.range(VERSIONS, prefix_end(VERSIONS)):
            length = _LENGTH.unpack_from(vkey, 1)[0]
            key = vkey[5:5 + length]
            if key != previous:
                previous = key
                if entry[:1] == VALUE:
                    yield key, entry[1:]

    def versions(self, key: bytes) -> list[tuple[int, int | None, bytes | None]]:
        """(valid from, valid to or None, value or None for a delete) of every version kept, oldest first."""
        prefix = self._prefix(key)
        found, valid_to = [], None
        for vkey, entry in self.store.range(prefix, prefix_end(prefix)):
            valid_from = _from_descending(vkey, len(prefix))
            found.append((valid_from, valid_to, entry[1:] if entry[:1] == VALUE else None))
            valid_to = valid_from
        return found[::-1]

    # -- writes

    def put(self, key: bytes, timestamp: int, value: bytes | None) -> str:
        """Place a version (None: a delete) at `timestamp`; returns DROPPED, LATEST or HISTORICAL."""
        if timestamp < self.stream_time - self.retention:
            return DROPPED
        if timestamp > self.stream_time:
            self.stream_time = timestamp
        prefix = self._prefix(key)
        at = prefix + _descending(timestamp)
        newer = None  # the oldest version after `timestamp`
        for vkey, _ in self.store.range(prefix, at):
            newer = _from_descending(vkey, len(prefix))
        older = None  # the version at or before `timestamp`
        for vkey, entry in self.store.range(at, prefix_end(prefix)):
            older = (_from_descending(vkey, len(prefix)), entry[:1] == DELETED)
            break
        if older is not None and older[0] == timestamp:
            self._reindex(key, timestamp, self._expiry(timestamp, older[1], newer),
                          self._expiry(timestamp, value is None, newer))
        else:
            self._reindex(key, timestamp, None, self._expiry(timestamp, value is None, newer))
            if older is not None:
                self._reindex(key, older[0], self._expiry(older[0], older[1], newer), timestamp)
        self.store.put(at, DELETED if value is None else VALUE + value)
        self._expire()
        return LATEST if newer is None else HISTORICAL

    def save(self) -> None:
        """Persist the stream time, if it moved since the last save."""
        if self.stream_time != self._saved_time:
            self.store.put(STREAM_TIME_KEY, _I64.pack(self.stream_time))
            self._saved_time = self.stream_time

    # -- expiry

    @staticmethod
    def _expiry(valid_from: int, deleted: bool, newer: int | None) -> int | None:
        return newer if newer is not None else valid_from if deleted else None

    def _reindex(self, key: bytes, valid_from: int, old: int | None, new: int | None) -> None:
        if old == new:
            return
        suffix = _LENGTH.pack(len(key)) + key + _descending(valid_from)
        if old is not None:
            self.store.delete(EXPIRY + _ascending(old) + suffix)
        if new is not None:
            self.store.put(EXPIRY + _ascending(new) + suffix, b"")
            if new < self._next_expiry:
                self._next_expiry = new

    def _expire(self) -> None:
        """Delete the versions that stopped being valid at or before stream time - retention."""
        cutoff = self.stream_time - self.retention
        if self._next_expiry > cutoff:
            return
        delete = self.store.delete
        for xkey, _ in list(self.store.range(EXPIRY, EXPIRY + _ascending(cutoff + 1))):
            delete(xkey)
            delete(VERSIONS + xkey[9:])
        self._next_expiry = self._first_expiry()

    def _first_expiry(self) -> int:
        for xkey, _ in self.store.range(EXPIRY, prefix_end(EXPIRY)):
            return _U64.unpack_from(xkey, 1)[0] - _FLIP
        return 1 << 62

    @staticmethod
    def _prefix(key: bytes) -> bytes:
        return VERSIONS + _LENGTH.pack(len(key)) + key


class VersionedStoreView:
    """Queries of a versioned table's history in the tasks of this process: get(key, as_of) and versions(key)."""

    def __init__(self, spec: Any, stores: list[Any]) -> None:
        self.spec = spec
        self._stores = [VersionedStore.of(store, spec.options["history_retention"]) for store in stores]

    def get(self, key: Any, default: Any = None, *, as_of: int | None = None) -> Any:
        """The value valid at as_of (epoch milliseconds; the latest if None), or default."""
        raw_key = self.spec.key_serde.serialize(key)
        for store in self._stores:
            if store.versions(raw_key):
                raw = store.get(raw_key, as_of)
                return default if raw is None else self.spec.value_serde.deserialize(raw)
        return default

    def items(self) -> Iterator[tuple[Any, Any]]:
        """Every key's latest value (keys whose latest version is a delete are left out)."""
        deserialize_key, deserialize = self.spec.key_serde.deserialize, self.spec.value_serde.deserialize
        for store in self._stores:
            for key, raw in store.latest_items():
                yield deserialize_key(key), deserialize(raw)

    def __len__(self) -> int:
        return sum(1 for _ in self.items())

    def versions(self, key: Any) -> list[tuple[int, int | None, Any]]:
        """(valid from, valid to or None, value or None for a delete) of the versions kept, oldest first."""
        raw_key = self.spec.key_serde.serialize(key)
        deserialize = self.spec.value_serde.deserialize
        for store in self._stores:
            found = store.versions(raw_key)
            if found:
                return [(start, end, None if raw is None else deserialize(raw)) for start, end, raw in found]
        return []
