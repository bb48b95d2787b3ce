"""Session windows: a record joins, and may bridge, the sessions of its key within the inactivity gap.

A record at ts touches every session [s, e] of its key with s - gap <= ts <=
e + gap.  It starts a session of its own when it touches none, extends the
one it touches, or merges several into one (merger(key, a, b) combines their
aggregates, oldest first, before the aggregator adds the record).  A session
closes when stream time passes end + gap + grace: until then a record may
still extend it.  A record is late when it would join or bridge a closed
session, or when the session it would form is already closed.
"""

from __future__ import annotations

from streams.processors.windowed.aggregate import WindowAggregate
from streams.record import Record
from streams.state.store import prefix_end
from streams.windows.definitions import Session, Windowed
from streams.windows.store import decode_time, encode_time, key_prefix


class SessionWindowAggregate(WindowAggregate):
    window: Session

    def _bounds(self, first: int, second: int | None) -> tuple[int, int]:
        return second, first  # session keys hold end, then start

    def _apply(self, r: Record, out: list[Record]) -> bool:
        ts, gap = r.timestamp, self.window.inactivity_gap
        closed_up_to = self.stream_time - self.close_span
        prefix = key_prefix(self.key_serde.serialize(r.key))
        at = len(prefix)
        touched = []  # (key, start, end, newest, aggregate bytes), oldest first
        for wkey, newest, raw in self.windows.windows(prefix + encode_time(ts - gap), prefix_end(prefix)):
            start = decode_time(wkey, at + 8)
            if start > ts + gap:
                break
            end = decode_time(wkey, at)
            if end <= closed_up_to:
                return False  # bridging into a closed session
            touched.append((wkey, start, end, newest, raw))
        start = min(ts, touched[0][1]) if touched else ts
        end = max(ts, touched[-1][2]) if touched else ts
        if end <= closed_up_to:
            return False

        key, deserialize = r.key, self.value_serde.deserialize
        if touched:
            aggregate = deserialize(touched[0][4])
            for other in touched[1:]:
                aggregate = self.merger(key, aggregate, deserialize(other[4]))
        else:
            aggregate = self.initializer()
        aggregate = self.aggregator(key, r.value, aggregate)
        raw = self.value_serde.serialize(aggregate)

        newest = max([ts, *(t[3] for t in touched)])
        wkey = prefix + encode_time(end) + encode_time(start)
        emit = not self.final
        existed = False
        for old_key, old_start, old_end, _, _ in touched:
            if old_key == wkey:
                existed = True
                continue
            self.windows.remove(old_end, old_key)
            if emit:
                out.append(Record(Windowed(key, old_start, old_end), None, newest, r.headers, r.origin))
        self.windows.put(wkey, newest, raw)
        if not existed:
            self._created(end, wkey)
        if emit:
            out.append(Record(Windowed(key, start, end), aggregate, newest, r.headers, r.origin))
        return True
