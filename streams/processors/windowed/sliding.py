"""Sliding windows: one window per distinct set of records that lie within time_difference of each other.

A record at ts belongs to every window [s, s + d] with s <= ts <= s + d.  It
also brings up to three new windows: its own left window [ts - d, ts], its
right window [ts + 1, ts + 1 + d] when some record already falls there, and
the right window of the record just before it, when ts is the first record to
fall into that one.  New windows take their aggregate from an existing window
instead of from the records, so no record is aggregated twice:

- the left window copies the window with the greatest start among those that
  end before ts (it holds the records in [ts - d, ts) when the record before ts
  lies within d), then adds the record;
- the right window copies, unchanged, the window with the greatest start that
  holds ts (before ts is added it holds the records in (ts, ts + 1 + d]).

The windows are visited newest first, as Kafka Streams does, which decides which
record counts as "the one before".  Following Kafka Streams, a record changes
and creates only windows that are still open (end >= stream time - grace), so a
window copied from a closed one misses the late records that the closed one did
not take.  With Sliding(exact=True) closed windows are changed and created too,
never emitted, so copies stay exact; that needs the longer retention of
3d + grace + 1, as a late record's new windows copy windows that start up to 2d
before it, and it can be d + grace behind stream time.
"""

from __future__ import annotations

from streams.processors.windowed.aggregate import WindowAggregate
from streams.record import Record
from streams.windows.definitions import Sliding
from streams.windows.store import decode_time, encode_time, key_prefix


class SlidingWindowAggregate(WindowAggregate):
    window: Sliding

    def _apply(self, r: Record, out: list[Record]) -> bool:
        ts, now, d = r.timestamp, self.stream_time, self.window.time_difference
        if ts + self.close_span < now:
            return False  # every window that could hold ts has closed
        prefix = key_prefix(self.key_serde.serialize(r.key))
        at = len(prefix)
        low = max(ts - 2 * d, self.visible_from)
        found = list(self.windows.windows(prefix + encode_time(low), prefix + encode_time(ts + 2)))
        starts: set[int] = set()
        holding = []  # existing windows that hold ts: (start, key, newest, aggregate bytes)
        left_source = right_source = None
        previous = None  # timestamp of the record before ts, as far as the windows tell
        left_exists = right_exists = complete = False
        for wkey, newest, raw in reversed(found):
            start = decode_time(wkey, at)
            starts.add(start)
            end = start + d
            if start == ts + 1:
                right_exists = True
            elif end > ts:
                if right_source is None:
                    right_source = (newest, raw)
                holding.append((start, wkey, newest, raw))
            elif end == ts:
                left_exists = True
                holding.append((start, wkey, newest, raw))
                if newest >= ts:
                    complete = True  # a record at ts came before: every window it needs exists
                    break
                previous = newest
            else:
                left_source, previous = raw, newest
                break

        key, value, aggregator, deserialize = r.key, r.value, self.aggregator, self.value_serde.deserialize
        changes = [(start, wkey, False, max(newest, ts), aggregator(key, value, deserialize(raw)))
                   for start, wkey, newest, raw in holding]
        if not complete:
            if previous is not None and previous + 1 not in starts and previous + 1 + d >= ts:
                start = previous + 1
                starts.add(start)  # it may be the left window too: written once
                changes.append((start, prefix + encode_time(start), True, ts,
                                aggregator(key, value, self.initializer())))
            if not left_exists and ts - d not in starts:
                base = deserialize(left_source) if previous is not None and previous >= ts - d else self.initializer()
                changes.append((ts - d, prefix + encode_time(ts - d), True, ts, aggregator(key, value, base)))
        open_from, exact = now - self.close_span, self.window.exact
        changes = [change for change in changes if exact or change[0] >= open_from]
        serialize, write = self.value_serde.serialize, self._write
        encoded = [serialize(change[4]) for change in changes]
        for (start, wkey, new, newest, aggregate), raw in zip(changes, encoded, strict=True):
            write(start, wkey, newest, raw, new, key, start, start + d, aggregate, r, out,
                  emit=start >= open_from)
        if not complete and not right_exists and right_source is not None and right_source[0] > ts:
            start, (newest, raw) = ts + 1, right_source
            write(start, prefix + encode_time(start), newest, raw, True, key, start, start + d,
                  deserialize(raw), r, out)
        return True
