"""Sliding windows: one window per distinct set of records that lie within time_difference of each other.

A record at ts belongs to every window [s, s + d] with s <= ts <= s + d.  It
also brings up to three new windows: its own left window [ts - d, ts], its
right window [ts + 1, ts + 1 + d] when some record already falls there, and
the right window of the record just before it, when ts is the first record to
fall into that one.  New windows take their aggregate from an existing window
that holds exactly the same earlier records, so no record is ever aggregated
twice:

- the left window copies the window with the greatest start among those that
  end before ts (it holds exactly the records in [ts - d, ts) when the previous
  record lies within d), then adds the record;
- the right window copies, unchanged, the window with the greatest start that
  holds ts (before ts is added it holds exactly the records in (ts, ts + 1 + d]).

Those copies are only exact if every window that the records define exists,
so windows are created and updated here even when they are already closed:
closed windows are never emitted, and retention (at least 3d + grace) keeps
every window a later copy can need.
"""

from __future__ import annotations

from streams.processors.windowed.aggregate import WindowAggregate
from streams.record import Record
from streams.windows.definitions import Sliding, Windowed
from streams.windows.store import decode_time, encode_time, key_prefix


class SlidingWindowAggregate(WindowAggregate):
    window: Sliding

    def _apply(self, r: Record, out: list[Record]) -> bool:
        ts, now, d = r.timestamp, self.stream_time, self.window.time_difference
        if ts + self.close_span <= now:
            return False  # every window that could hold ts has closed
        prefix = key_prefix(self.key_serde.serialize(r.key))
        at = len(prefix)
        starts: set[int] = set()
        holding = []  # existing windows that hold ts: (start, key, newest, aggregate bytes)
        left_source = right_source = None
        previous = None  # timestamp of the latest earlier record, when it is found
        left_exists = right_exists = False
        for wkey, newest, raw in self.windows.windows(prefix + encode_time(ts - 2 * d), prefix + encode_time(ts + 2)):
            start = decode_time(wkey, at)
            starts.add(start)
            end = start + d
            if end < ts:
                left_source, previous = raw, newest
            elif end == ts:
                left_exists = True
                if newest < ts:
                    previous = newest
                holding.append((start, wkey, newest, raw))
            elif start <= ts:
                right_source = (newest, raw)
                holding.append((start, wkey, newest, raw))
            else:
                right_exists = True

        key, value, aggregator, deserialize = r.key, r.value, self.aggregator, self.value_serde.deserialize
        changes = [(start, wkey, False, max(newest, ts), aggregator(key, value, deserialize(raw)))
                   for start, wkey, newest, raw in holding]
        if previous is not None and previous + 1 not in starts and previous + 1 + d >= ts:
            start = previous + 1
            starts.add(start)
            changes.append((start, prefix + encode_time(start), True, ts, aggregator(key, value, self.initializer())))
        if not left_exists and ts - d not in starts:
            base = deserialize(left_source) if previous is not None and previous >= ts - d else self.initializer()
            changes.append((ts - d, prefix + encode_time(ts - d), True, ts, aggregator(key, value, base)))
        serialize = self.value_serde.serialize
        encoded = [serialize(change[4]) for change in changes]

        put, emit = self.windows.put, not self.final
        closed_up_to = now - self.close_span
        for (start, wkey, new, newest, aggregate), raw in zip(changes, encoded, strict=True):
            put(wkey, newest, raw)
            if new:
                self._created(start, wkey)
            if emit and start > closed_up_to:
                out.append(Record(Windowed(key, start, start + d), aggregate, newest, r.headers, r.origin))
        if not right_exists and right_source is not None and right_source[0] > ts:
            start, (newest, raw) = ts + 1, right_source
            wkey = prefix + encode_time(start)
            put(wkey, newest, raw)
            self._created(start, wkey)
            if emit and start > closed_up_to:
                out.append(Record(Windowed(key, start, start + d), deserialize(raw), newest, r.headers, r.origin))
        return True
