"""Property tests: every window kind, in both emit modes, against a brute-force reference model.

The topology collects the ids of the records in each window, so a result
names exactly which records a window holds.  The model recomputes windows
from first principles (membership by definition, sessions by a naive list,
sliding windows from the full set of accepted records) and is compared with
what the real tasks emit through the TestDriver after every record, with the
late-record count, and with the store's contents at the end.
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
    late: int = 0
    times: dict[int, int] = field(default_factory=dict)  # record id -> timestamp

    def newest(self, ids):
        return max(self.times[i] for i in ids)

    def result(self, windowed, ids):
        return (windowed, sorted(ids), self.newest(ids)) if ids is not None else (windowed, None, None)


class TimeModel(Model):
    """Hopping and tumbling windows: a record joins every open window [start, start + size) holding it."""

    def __init__(self, window, final, retention):
        super().__init__(window, final, retention)
        self.windows: dict[tuple[str, int], list[int]] = {}

    def step(self, key, ts, rid):
        w, out = self.window, []
        self.times[rid] = ts
        before = self.stream_time
        self.stream_time = now = max(before, ts)
        close = w.size + w.grace
        if self.final:
            for (k, start), ids in sorted(self.windows.items()):
                if before < start + close <= now:
                    out.append(self.result(Windowed(k, start, start + w.size), ids))
        candidates = range((ts // w.advance - w.size // w.advance - 2) * w.advance, ts + 1, w.advance)
        holding = [s for s in candidates if 0 <= s <= ts < s + w.size and s + close > now]
        if not holding:
            self.late += 1
        for start in holding:
            ids = self.windows.setdefault((key, start), [])
            ids.append(rid)
            if not self.final:
                out.append(self.result(Windowed(key, start, start + w.size), ids))
        return out

    def stored(self):
        return {(Windowed(k, s, s + self.window.size), tuple(sorted(ids)))
                for (k, s), ids in self.windows.items() if s + self.retention > self.stream_time}


class SlidingModel(Model):
    """Sliding windows, recomputed from the accepted records at every step."""

    def __init__(self, window, final, retention):
        super().__init__(window, final, retention)
        self.accepted: dict[str, list[int]] = {}
        self.live: set[tuple[str, int]] = set()
        self.emitted: set[tuple[str, int]] = set()

    def windows(self, key):
        d = self.window.time_difference
        stamps = {self.times[i] for i in self.accepted.get(key, [])}
        starts = {t - d for t in stamps}
        starts |= {t + 1 for t in stamps if any(t < u <= t + 1 + d for u in stamps)}
        return {s: sorted(i for i in self.accepted[key] if s <= self.times[i] <= s + d) for s in starts}

    def step(self, key, ts, rid):
        w, out = self.window, []
        d, close = w.time_difference, w.time_difference + w.grace + 1
        self.times[rid] = ts
        self.stream_time = now = max(self.stream_time, ts)
        if self.final:
            for k, start in sorted(self.live - self.emitted):
                if start + close <= now:
                    self.emitted.add((k, start))
                    out.append(self.result(Windowed(k, start, start + d), self.windows(k)[start]))
        if ts + close <= now:
            self.late += 1
            return out
        previous = self.windows(key)
        self.accepted.setdefault(key, []).append(rid)
        for start, ids in sorted(self.windows(key).items()):
            if start + close <= now:
                continue
            if start not in previous:
                self.live.add((key, start))
            if not self.final and previous.get(start) != ids:
                out.append(self.result(Windowed(key, start, start + d), ids))
        return out

    def stored(self):
        d = self.window.time_difference
        return {(Windowed(k, s, s + d), tuple(ids)) for k in self.accepted for s, ids in self.windows(k).items()
                if s + self.retention > self.stream_time}


class SessionModel(Model):
    """Sessions as a plain list per key, merged by scanning all of them."""

    def __init__(self, window, final, retention):
        super().__init__(window, final, retention)
        self.sessions: dict[str, list[tuple[int, int, list[int]]]] = {}
        self.emitted: set[tuple[str, int, int]] = set()

    def step(self, key, ts, rid):
        gap, out = self.window.inactivity_gap, []
        close = gap + self.window.grace + 1
        self.times[rid] = ts
        self.stream_time = now = max(self.stream_time, ts)
        if self.final:
            for k in sorted(self.sessions):
                for start, end, ids in sorted(self.sessions[k]):
                    if end + close <= now and (k, start, end) not in self.emitted:
                        self.emitted.add((k, start, end))
                        out.append(self.result(Windowed(k, start, end), ids))
        mine = self.sessions.setdefault(key, [])
        touched = [s for s in mine if s[0] - gap <= ts <= s[1] + gap]
        start = min([ts, *(s[0] for s in touched)])
        end = max([ts, *(s[1] for s in touched)])
        if any(s[1] + close <= now for s in touched) or end + close <= now:
            self.late += 1
        else:
            ids = sorted([rid, *(i for s in touched for i in s[2])])
            for s in touched:
                mine.remove(s)
                if not self.final and (s[0], s[1]) != (start, end):
                    out.append(self.result(Windowed(key, s[0], s[1]), None))
            mine.append((start, end, ids))
            if not self.final:
                out.append(self.result(Windowed(key, start, end), ids))
        for k, sessions in self.sessions.items():
            self.sessions[k] = [s for s in sessions if s[1] + self.retention > now]
        return out

    def stored(self):
        return {(Windowed(k, s, e), tuple(ids)) for k, sessions in self.sessions.items() for s, e, ids in sessions}


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
def test_sliding_matches_model(records, difference, grace_ms, final, extra_retention):
    run_both(Sliding(difference, grace=grace_ms), records, final, extra_retention)


@PROPERTY
@given(timelines(), st.integers(1, 25), grace, modes, extra)
def test_session_matches_model(records, gap, grace_ms, final, extra_retention):
    run_both(Session(gap, grace=grace_ms), records, final, extra_retention)
