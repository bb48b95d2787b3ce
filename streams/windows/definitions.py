"""Window kinds, the Windowed key, and the arithmetic each kind needs.

All times are event-time milliseconds.  Every kind files its windows in the
store under one time per window (its "index time": the start for time and
sliding windows, the end for sessions), and two constants measured from that
time decide everything about closing and retention:

- a window is closed, and its final result due, once stream time reaches
  index time + close_span;
- it is deleted, and no longer seen by later records, once the store's time
  (the largest index time written to it) reaches index time + retention.

These follow Kafka Streams' rules, boundaries included, so that both give the
same results on the same input.  Keeping them uniform lets one store layout and
one processor base serve every kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

Duration = timedelta | int
"""A duration: a timedelta, or an int number of milliseconds."""


def to_ms(value: Duration, what: str) -> int:
    """Milliseconds from a timedelta or int; negative durations are refused."""
    if isinstance(value, timedelta):
        ms = value // timedelta(milliseconds=1)
    elif isinstance(value, int) and not isinstance(value, bool):
        ms = value
    else:
        raise TypeError(f"{what} must be a timedelta or an int of milliseconds, got {value!r}")
    if ms < 0:
        raise ValueError(f"{what} must not be negative, got {ms} ms")
    return ms


@dataclass(frozen=True, order=True, slots=True)
class Windowed:
    """A key of a windowed result: the grouping key and its window's bounds in milliseconds.

    Time windows are [start, end); sliding windows and sessions include both bounds.
    """

    key: Any
    start: int
    end: int


class WindowDefinition:
    """What the store and processors need from a window kind."""

    kind: str
    grace: int

    @property
    def close_span(self) -> int:
        """Stream time at or past index time + close_span closes the window."""
        raise NotImplementedError

    @property
    def min_retention(self) -> int:
        """The shortest retention (from index time) allowed: windows must outlive their close."""
        raise NotImplementedError

    def end_of(self, start: int) -> int:
        """The end of the window that starts at `start` (sessions store their end instead)."""
        raise NotImplementedError

    def closes_at(self, start: int, end: int) -> int:
        """The stream time at which the window [start, end] is closed and its result final."""
        return start + self.close_span


class Hopping(WindowDefinition):
    """Fixed-size windows [start, start + size) every `advance` ms, aligned to the epoch; they overlap.

    No window starts before the epoch (as in Kafka Streams): a record near time 0
    lands only in the windows that start at or after 0.
    """

    kind = "time"

    def __init__(self, size: Duration, advance: Duration, grace: Duration = 0) -> None:
        self.size = to_ms(size, "size")
        self.advance = to_ms(advance, "advance")
        self.grace = to_ms(grace, "grace")
        if self.size <= 0 or self.advance <= 0:
            raise ValueError("window size and advance must be positive")
        if self.advance > self.size:
            raise ValueError(f"advance ({self.advance} ms) must not exceed the size ({self.size} ms)")

    @property
    def close_span(self) -> int:
        return self.size + self.grace

    @property
    def min_retention(self) -> int:
        return self.size + self.grace

    def end_of(self, start: int) -> int:
        return start + self.size

    def starts_for(self, timestamp: int) -> list[int]:
        """Starts of the windows that hold `timestamp`, oldest first; none start before the epoch."""
        advance, size = self.advance, self.size
        last = timestamp - timestamp % advance
        if last < 0:
            return []
        if advance == size:
            return [last]
        first = max(0, last - ((size - 1) // advance) * advance)
        return [s for s in range(first, last + 1, advance) if s > timestamp - size]

    def __repr__(self) -> str:
        return f"Hopping(size={self.size}, advance={self.advance}, grace={self.grace})"


class Tumbling(Hopping):
    """Fixed-size, non-overlapping windows [start, start + size), aligned to the epoch."""

    def __init__(self, size: Duration, grace: Duration = 0) -> None:
        super().__init__(size, size, grace)

    def __repr__(self) -> str:
        return f"Tumbling(size={self.size}, grace={self.grace})"


class Sliding(WindowDefinition):
    """Windows [start, start + time_difference] (both ends included) defined by the records themselves.

    Every record at ts has a window [ts - d, ts] ending with it, and a window
    [ts + 1, ts + 1 + d] starting just after it whenever a record falls there;
    so each distinct set of records lying within d of each other gets one window.

    New windows start from the aggregate of an existing one.  As in Kafka
    Streams, a record does not change windows that have closed, so a window
    built later from a closed one can miss a late record that it spans.
    exact=True also folds late records into closed windows (never emitting
    them), so that every window's aggregate covers exactly the records in it;
    it needs a longer retention (3d + grace + 1).
    """

    kind = "sliding"

    def __init__(self, time_difference: Duration, grace: Duration = 0, *, exact: bool = False) -> None:
        self.time_difference = to_ms(time_difference, "time_difference")
        self.grace = to_ms(grace, "grace")
        self.exact = bool(exact)
        if self.time_difference <= 0:
            raise ValueError("time_difference must be positive")

    @property
    def close_span(self) -> int:
        return self.time_difference + self.grace

    @property
    def min_retention(self) -> int:
        # New windows copy aggregates from windows starting up to 2d before the record.  Exact
        # windows also take records up to d + grace behind stream time into closed windows.
        if self.exact:
            return 3 * self.time_difference + self.grace + 1
        return 2 * self.time_difference + self.grace

    def end_of(self, start: int) -> int:
        return start + self.time_difference

    def __repr__(self) -> str:
        exact = ", exact=True" if self.exact else ""
        return f"Sliding(time_difference={self.time_difference}, grace={self.grace}{exact})"


class Session(WindowDefinition):
    """Per-key sessions [first, last] (both ends included): records closer than the gap join one session.

    A session can still grow until stream time reaches its end + inactivity gap,
    so that (plus grace) is when it closes.
    """

    kind = "session"

    def __init__(self, inactivity_gap: Duration, grace: Duration = 0) -> None:
        self.inactivity_gap = to_ms(inactivity_gap, "inactivity_gap")
        self.grace = to_ms(grace, "grace")
        if self.inactivity_gap <= 0:
            raise ValueError("inactivity_gap must be positive")

    @property
    def close_span(self) -> int:
        return self.inactivity_gap + self.grace

    @property
    def min_retention(self) -> int:
        return self.close_span

    def end_of(self, start: int) -> int:
        raise TypeError("a session's end is stored with it, not computed from its start")

    def closes_at(self, start: int, end: int) -> int:
        return end + self.close_span  # a session is filed under its end

    def __repr__(self) -> str:
        return f"Session(inactivity_gap={self.inactivity_gap}, grace={self.grace})"
