"""Suppression: a table's updates held back in a buffer and emitted once they are due.

Each key has at most one buffered update, its latest; the key's due time is set
when it enters the buffer and does not move with later updates:

- until the window closes: the window's close time (windows/definitions.py),
  so each window emits once, its final value, as emit="final" does; a window
  deleted while buffered (a session merged into another) emits nothing;
- until a time limit: the first update's timestamp plus the limit, so a key
  emits at most once per limit with its latest value (deletes included).

Time is the largest timestamp the processor has seen (stream time); an update
is emitted once stream time reaches its due time.  The buffer is three key
spaces of the task's changelogged store, so it survives restarts and is rolled
back with an aborted transaction:

- b"k" + key: due time, timestamp, a flag for "has a value", and the value;
- b"t" + due time + key: the due index, scanned from the front;
- b"m" + name: the stream time.
"""

from __future__ import annotations

import struct
from typing import Any

from streams.errors import BufferFullError
from streams.processors.api import Processor
from streams.record import Record
from streams.serdes import Serde
from streams.state.store import prefix_end
from streams.windows.definitions import WindowDefinition
from streams.windows.store import NO_TIME, decode_time, encode_time

ENTRIES, INDEX, META = b"k", b"t", b"m"
STREAM_TIME_KEY = META + b"stream-time"
NEVER = 1 << 62

_HEAD = struct.Struct(">qq?")
_INT = struct.Struct(">q")


class SuppressBuffer:
    """The buffered updates of one task, with their count and size kept in memory."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.count = self.size = 0
        for key, value in store.range(ENTRIES, prefix_end(ENTRIES)):
            self.count += 1
            self.size += len(key) - 1 + len(value) - _HEAD.size
        self.next_due = self._first_due()

    def due_of(self, key: bytes) -> int | None:
        entry = self.store.get(ENTRIES + key)
        return None if entry is None else _HEAD.unpack_from(entry)[0]

    def put(self, key: bytes, due: int, timestamp: int, value: bytes | None) -> None:
        """Buffer the key's latest update under `due` (a key already buffered keeps its due time)."""
        entry_key = ENTRIES + key
        previous = self.store.get(entry_key)
        if previous is None:
            self.store.put(INDEX + encode_time(due) + key, b"")
            self.count += 1
            self.size += len(key)
            if due < self.next_due:
                self.next_due = due
        else:
            self.size -= len(previous) - _HEAD.size
        raw = b"" if value is None else value
        self.store.put(entry_key, _HEAD.pack(due, timestamp, value is not None) + raw)
        self.size += len(raw)

    def remove(self, key: bytes) -> None:
        entry = self.store.get(ENTRIES + key)
        if entry is None:
            return
        due = _HEAD.unpack_from(entry)[0]
        self._delete(key, due, entry)
        if due == self.next_due:
            self.next_due = self._first_due()

    def pop_due(self, up_to: int | None) -> list[tuple[bytes, int, bytes | None]]:
        """Remove and return (key, timestamp, value or None) of the updates due at or before up_to, oldest
        first; up_to=None takes just the oldest one."""
        end = INDEX + encode_time(up_to + 1) if up_to is not None else prefix_end(INDEX)
        taken = []
        for ikey, _ in list(self.store.range(INDEX, end)):
            key = ikey[9:]
            entry = self.store.get(ENTRIES + key)
            due, timestamp, has_value = _HEAD.unpack_from(entry)
            self._delete(key, due, entry)
            taken.append((key, timestamp, entry[_HEAD.size:] if has_value else None))
            if up_to is None:
                break
        self.next_due = self._first_due()
        return taken

    def stream_time(self) -> int:
        raw = self.store.get(STREAM_TIME_KEY)
        return NO_TIME if raw is None else _INT.unpack(raw)[0]

    def set_stream_time(self, t: int) -> None:
        self.store.put(STREAM_TIME_KEY, _INT.pack(t))

    def _delete(self, key: bytes, due: int, entry: bytes) -> None:
        self.store.delete(ENTRIES + key)
        self.store.delete(INDEX + encode_time(due) + key)
        self.count -= 1
        self.size -= len(key) + len(entry) - _HEAD.size

    def _first_due(self) -> int:
        for ikey, _ in self.store.range(INDEX, prefix_end(INDEX)):
            return decode_time(ikey, 1)
        return NEVER


class Suppress(Processor):
    """Holds each key's latest update until it is due (see the module docstring); enforces the buffer's limits."""

    def __init__(self, name: str, store_name: str, key_serde: Serde, value_serde: Serde, *,
                 window: WindowDefinition | None, limit_ms: int, max_records: int | None, max_bytes: int | None,
                 emit_early: bool) -> None:
        super().__init__(name)
        self.store_name = store_name
        self.key_serde = key_serde
        self.value_serde = value_serde
        self.window = window
        self.limit_ms = limit_ms
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.emit_early = emit_early
        self.buffer: SuppressBuffer = None  # type: ignore[assignment]
        self.stream_time = NO_TIME

    def init(self, context: Any) -> None:
        super().init(context)
        self.buffer = SuppressBuffer(context.get_store(self.store_name))
        self.stream_time = self.buffer.stream_time()

    def process(self, batch: list[Record]) -> None:
        buffer, window, out = self.buffer, self.window, []
        started = self.stream_time
        for r in batch:
            if r.key is None:
                self.context.metrics.incr("dropped_null_records", 1, self.name)
                continue
            try:
                key = self.key_serde.serialize(r.key)
                value = None if r.value is None else self.value_serde.serialize(r.value)
            except Exception as exc:
                self.context.report_error(r, exc, self.name)
                continue
            if r.timestamp > self.stream_time:
                self.stream_time = r.timestamp
            if window is not None:
                if value is None:
                    buffer.remove(key)  # a window that no longer exists has no final result
                else:
                    buffer.put(key, window.closes_at(r.key.start, r.key.end), r.timestamp, value)
            else:
                due = buffer.due_of(key)
                buffer.put(key, r.timestamp + self.limit_ms if due is None else due, r.timestamp, value)
            if buffer.next_due <= self.stream_time:
                self._emit(buffer.pop_due(self.stream_time), out)
            self._enforce_limits(out)
        if self.stream_time != started:
            buffer.set_stream_time(self.stream_time)
        self.forward(out)

    def _enforce_limits(self, out: list[Record]) -> None:
        buffer, max_records, max_bytes = self.buffer, self.max_records, self.max_bytes
        while (max_records is not None and buffer.count > max_records) or \
                (max_bytes is not None and buffer.size > max_bytes):
            if not self.emit_early:
                raise BufferFullError(
                    f"suppress {self.name!r}: its buffer holds {buffer.count} records and {buffer.size} bytes, over "
                    f"max_records={max_records} or max_bytes={max_bytes}; raise the limit, or use "
                    f'until_time_limit(..., when_full="emit_early")')
            self._emit(buffer.pop_due(None), out)
            self.context.metrics.incr("suppress_early_emits", 1, self.name)

    def _emit(self, updates: list[tuple[bytes, int, bytes | None]], out: list[Record]) -> None:
        deserialize_key, deserialize = self.key_serde.deserialize, self.value_serde.deserialize
        for key, timestamp, value in updates:
            out.append(Record(deserialize_key(key), None if value is None else deserialize(value), timestamp))
