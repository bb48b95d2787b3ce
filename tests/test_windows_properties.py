"""Property tests: every window kind, in both emit modes, against a brute-force reference model.

The topology collects the ids of the records in each window, so a result
names exactly which records a window holds.  The model recomputes windows
from first principles (membership by definition, sessions by a naive list,
exact sliding windows from the full set of accepted records) with Kafka
Streams' rules for closing, lateness and retention, and is compared with what
the real tasks emit through the TestDriver after every record, with the
late-record count, and with the store's contents at the end.

Final results follow suppress(untilWindowCloses): a window written while open
is emitted once it is due, with its value then; the due windows go out at the
first write that carries a newer timestamp.  Default (not exact) sliding
windows, whose aggregates depend on which windows existed, are checked against
Kafka Streams itself by tests/test_oracle_windows.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams import App
from streams.testing import TestDriver
from streams.windows import Hopping, Session, Sliding, Tumbling, Windowed, WindowedJsonSerde

KEYS = ("a", "b", "c")


def collect(key, value, ids):
    return sorted([*ids, value])


def merge(key, a, b):
    return sorted(a + b)


# -- the reference model


@dataclass
class Model:
    """Per-step expected outputs: lists of (Windowed, ids or None, timestamp or None)."""

    window: object
    final: bool
    retention: int
    stream_time: int = -(1 << 62)
    store_time: int = -(1 << 62)  # the largest index time written: retention counts from it
    late: int = 0
    times: dict[int, int] = field(default_factory=dict)  # record id -> timestamp
    pending: set = field(default_factory=set)  # windows written while open, not emitted since

    def newest(self, ids):
        return max(self.times[i] for i in ids)

    def result(self, windowed, ids):
        return (windowed, sorted(ids), self.newest(ids)) if ids is not None else (windowed, None, None)

    def written(self, index_time, window_id):
        self.store_time = max(self.store_time, index_time)
        self.pending.add(window_id)

    def emit_due(self, due, current):
        """Final results of the pending windows due by `due(window_id)`, valued by `current(window_id)`."""
        out = []
        for window_id in sorted(w for w in self.pending if due(w)):
            self.pending.discard(window_id)
            windowed, ids = current(window_id)
            out.append(self.result(windowed, ids))
        return out


class TimeModel(Model):
    """Hopping and tumbling windows: a record joins every open window [start, start + size) holding it."""

    def __init__(self, window, final, retention):
        super().__init__(window, final, retention)
        self.windows: dict[tuple[str, int], list[int]] = {}

    def step(self, key, ts, rid):
        w, out = self.window, []
        self.times[rid] = ts
        self.stream_time = now = max(self.stream_time, ts)
        close = w.size + w.grace
        candidates = range((ts // w.advance - w.size // w.advance - 2) * w.advance, ts + 1, w.advance)
        holding = [s for s in candidates if 0 <= s <= ts < s + w.size and s + close > now]
        if not holding:
            self.late += 1
        for start in holding:
            ids = self.windows.setdefault((key, start), [])
            ids.append(rid)
            self.written(start, (key, start))
            if not self.final:
                out.append(self.result(Windowed(key, start, start + w.size), ids))
        if self.final:
            out += self.emit_due(lambda kw: kw[1] + close <= now,
                                 lambda kw: (Windowed(kw[0], kw[1], kw[1] + w.size), self.windows[kw]))
        return out

    def stored(self):
        return {(Windowed(k, s, s + self.window.size), tuple(sorted(ids)))
                for (k, s), ids in self.windows.items() if s + self.retention > self.store_time}


class SlidingModel(Model):
    """Exact sliding windows, recomputed from the accepted records at every step."""

    def __init__(self, window, final, retention):
        super().__init__(window, final, retention)
        self.accepted: dict[str, list[int]] = {}

    def windows(self, key):
        d = self.window.time_difference
        stamps = {self.times[i] for i in self.accepted.get(key, [])}
        starts = {t - d for t in stamps}
        starts |= {t + 1 for t in stamps if any(t < u <= t + 1 + d for u in stamps)}
        return {s: sorted(i for i in self.accepted[key] if s <= self.times[i] <= s + d) for s in starts}

    def step(self, key, ts, rid):
        w, out = self.window, []
        d, close = w.time_difference, w.time_difference + w.grace
        self.times[rid] = ts
        advancing = ts > self.stream_time
        self.stream_time = now = max(self.stream_time, ts)
        if ts + close < now:
            self.late += 1
            return out

        def due(kw):
            return kw[1] + close <= now

        def current(kw):
            return Windowed(kw[0], kw[1], kw[1] + d), self.windows(kw[0])[kw[1]]

        previous = self.windows(key)
        if self.final and advancing and any(ts - d < s <= ts for s in previous):
            # The record's first write, which closes the due windows, updates the newest window
            # that holds it and ends after it: the windows due go out with their values before it.
            out += self.emit_due(due, current)
        self.accepted.setdefault(key, []).append(rid)
        for start, ids in sorted(self.windows(key).items()):
            if previous.get(start) == ids:
                continue
            self.store_time = max(self.store_time, start)
            if start + close < now:
                continue  # closed: changed in the store, never emitted
            self.written(start, (key, start))
            if not self.final:
                out.append(self.result(Windowed(key, start, start + d), ids))
        if self.final:
            out += self.emit_due(due, current)
        return out

    def stored(self):
        d = self.window.time_difference
        return {(Windowed(k, s, s + d), tuple(ids)) for k in self.accepted for s, ids in self.windows(k).items()
                if s + self.retention > self.store_time}


class SessionModel(Model):
    """Sessions as a plain dict per key, merged by scanning all of them."""

    def __init__(self, window, final, retention):
        super().__init__(window, final, retention)
        self.sessions: dict[str, dict[tuple[int, int], list[int]]] = {}

    def step(self, key, ts, rid):
        gap, out = self.window.inactivity_gap, []
        close = gap + self.window.grace
        self.times[rid] = ts
        self.stream_time = now = max(self.stream_time, ts)
        mine = self.sessions.setdefault(key, {})
        # A closed session (end + gap + grace < stream time) is never seen again, whatever the retention.
        touched = [b for b in mine if b[1] + close >= now and b[0] - gap <= ts <= b[1] + gap]
        start = min([ts, *(b[0] for b in touched)])
        end = max([ts, *(b[1] for b in touched)])
        if end + close < now:
            self.late += 1
        else:
            ids = sorted([rid, *(i for b in touched for i in mine[b])])
            for bounds in touched:
                del mine[bounds]
                self.pending.discard((key, *bounds))
                if not self.final and bounds != (start, end):
                    out.append(self.result(Windowed(key, *bounds), None))
            mine[(start, end)] = ids
            self.written(end, (key, start, end))
            if not self.final:
                out.append(self.result(Windowed(key, start, end), ids))
        if self.final:
            out += self.emit_due(lambda kw: kw[2] + close <= now,
                                 lambda kw: (Windowed(*kw), self.sessions[kw[0]][kw[1:]]))
        for sessions in self.sessions.values():
            for bounds in [b for b in sessions if b[1] + self.retention <= self.store_time and b[1] + close < now]:
                del sessions[bounds]
        return out

    def stored(self):
        return {(Windowed(k, s, e), tuple(ids)) for k, sessions in self.sessions.items()
                for (s, e), ids in sessions.items()}


MODELS = {"time": TimeModel, "sliding": SlidingModel, "session": SessionModel}


# -- running both


def run_both(window, records, final, extra_retention):
    retention = window.min_retention + extra_retention
    model = MODELS[window.kind](window, final, retention)
    app = App("prop", brokers="unused:9092")
    windowed = app.stream("in").group_by_key().window(window)
    table = windowed.aggregate(list, collect, name="w", merger=merge, emit="final" if final else "update",
                               retention=retention)
    table.to_stream().to("out")
    serde = WindowedJsonSerde()
    with TestDriver(app) as driver:
        for rid, (key, ts) in enumerate(records):
            expected = model.step(key, ts, rid)
            driver.pipe_input("in", key, rid, timestamp=ts)
            got = [(r.key, r.value, r.timestamp if r.value is not None else None)
                   for r in driver.read_output("out", key_serde=serde)]
            assert sorted(got, key=repr) == sorted(expected, key=repr), f"after record {rid} ({key}@{ts})"
        assert driver.tasks["0_0"].metrics.get("late_records") == model.late
        stored = {(w, tuple(ids)) for w, ids in driver.store("w").fetch_all()}
        assert stored == model.stored()


@st.composite
def timelines(draw, max_size=40):
    """Mostly increasing timestamps with jitter and occasional far-late records, over a few keys."""
    size = draw(st.integers(0, max_size))
    records, base = [], 0
    for _ in range(size):
        base += draw(st.integers(0, 12))
        jitter = draw(st.sampled_from([0, 0, 0, -3, -10, -25, -60]))
        records.append((draw(st.sampled_from(KEYS)), max(0, base + jitter)))
    return records


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
modes = st.booleans()
extra = st.sampled_from([0, 0, 7, 50])
grace = st.integers(0, 20)


@PROPERTY
@given(timelines(), st.integers(1, 30), grace, modes, extra)
def test_tumbling_matches_model(records, size, grace_ms, final, extra_retention):
    run_both(Tumbling(size, grace=grace_ms), records, final, extra_retention)


@PROPERTY
@given(timelines(), st.integers(1, 30), st.integers(1, 30), grace, modes, extra)
def test_hopping_matches_model(records, size, advance, grace_ms, final, extra_retention):
    advance = min(advance, size)
    run_both(Hopping(size, advance, grace=grace_ms), records, final, extra_retention)


@PROPERTY
@given(timelines(), st.integers(1, 25), grace, modes, extra)
def test_exact_sliding_matches_model(records, difference, grace_ms, final, extra_retention):
    run_both(Sliding(difference, grace=grace_ms, exact=True), records, final, extra_retention)


@PROPERTY
@given(timelines(), st.integers(1, 25), grace, modes, extra)
def test_session_matches_model(records, gap, grace_ms, final, extra_retention):
    run_both(Session(gap, grace=grace_ms), records, final, extra_retention)
