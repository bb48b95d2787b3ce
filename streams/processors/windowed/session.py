"""Session windows: a record joins, and may bridge, the sessions of its key within the inactivity gap.

A record at ts merges with every open session [s, e] of its key that lies within
the gap (e >= ts - gap and s <= ts + gap).  It starts a session of its own when
there is none, extends the one there is, or merges several into one: the
aggregate starts from initializer(), merger(key, aggregate, session) takes in
each session oldest first, then the aggregator adds the record.  Kafka Streams'
rules, with one choice made where its results depend on store retention:

- a session closes when its end falls behind stream time - gap - grace; a
  record is late, and dropped, when the session it would form is closed;
- a closed session is never seen again, whatever the retention: a late record
  within the gap of one forms a session of its own, or joins open ones.
  Retention only says how long closed sessions stay in the store for queries.
  (A final result goes out when stream time reaches end + gap + grace; a record
  that lands on that very boundary still merges, and the result goes out again.)
"""

from __future__ import annotations

from streams.processors.windowed.aggregate import WindowAggregate
from streams.record import Record
from streams.state.store import prefix_end
from streams.windows.definitions import Session, Windowed
from streams.windows.store import decode_time, encode_time, key_prefix


class SessionWindowAggregate(WindowAggregate):
    window: Session

    @property
    def visible_from(self) -> int:
        """The lowest end of a session that is not closed: later records see no closed session.

        The bound is the late rule's (end >= stream time - gap - grace), not retention's,
        so a longer retention changes no result.
        """
        return self.stream_time - self.close_span

    @property
    def expired_to(self) -> int:
        """Retention deletes closed sessions only, even when it equals the close span."""
        return min(super().expired_to, self.visible_from - 1)

    def _bounds(self, first: int, second: int | None) -> tuple[int, int]:
        return second, first  # session keys hold end, then start

    def _apply(self, r: Record, out: list[Record]) -> bool:
        ts, gap = r.timestamp, self.window.inactivity_gap
        prefix = key_prefix(self.key_serde.serialize(r.key))
        at = len(prefix)
        low = max(ts - gap, self.visible_from)
        touched = []  # (key, start, end, aggregate bytes), oldest first
        # The sessions a record sees never overlap, so ordered by end they are ordered by start too.
        for wkey, _, raw in self.windows.windows(prefix + encode_time(low), prefix_end(prefix)):
            start = decode_time(wkey, at + 8)
            if start > ts + gap:
                break
            touched.append((wkey, start, decode_time(wkey, at), raw))
        start = min(ts, touched[0][1]) if touched else ts
        end = max(ts, touched[-1][2]) if touched else ts
        if end + self.close_span < self.stream_time:
            return False

        key, deserialize = r.key, self.value_serde.deserialize
        aggregate = self.initializer()
        for other in touched:
            aggregate = self.merger(key, aggregate, deserialize(other[3]))
        aggregate = self.aggregator(key, r.value, aggregate)
        raw = self.value_serde.serialize(aggregate)

        wkey = prefix + encode_time(end) + encode_time(start)
        existed = False
        for old_key, old_start, old_end, _ in touched:
            if old_key == wkey:
                existed = True
                continue
            self.windows.remove(old_end, old_key)
            if not self.final:
                out.append(Record(Windowed(key, old_start, old_end), None, old_end, r.headers, r.origin))
        self._write(end, wkey, end, raw, not existed, key, start, end, aggregate, r, out)
        return True
