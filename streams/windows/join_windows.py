"""JoinWindows: how far apart in event time two records of a stream-stream join may lie."""

from __future__ import annotations

from streams.windows.definitions import Duration, to_ms


class JoinWindows:
    """A left record at t joins right records with timestamps in [t - before, t + after].

    Seen from the right, a record at r joins left records in [r - after, r + before].
    grace is how long, in stream time, a record's window stays open for records that
    arrive out of order: a left record's window closes once stream time passes
    t + after + grace, a right record's once it passes r + before + grace.  Only then is
    an unmatched record's result of a left or outer join final and emitted.
    """

    __slots__ = ("before", "after", "grace")

    def __init__(self, before: Duration, after: Duration | None = None, grace: Duration = 0) -> None:
        self.before = to_ms(before, "before")
        self.after = self.before if after is None else to_ms(after, "after")
        self.grace = to_ms(grace, "grace")

    @property
    def left_close_span(self) -> int:
        """A left record at t is closed once stream time exceeds t + left_close_span."""
        return self.after + self.grace

    @property
    def right_close_span(self) -> int:
        """A right record at r is closed once stream time exceeds r + right_close_span."""
        return self.before + self.grace

    @property
    def retention(self) -> int:
        """The longest a buffered record can be needed: before + after + grace."""
        return self.before + self.after + self.grace

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, JoinWindows):
            return NotImplemented
        return (self.before, self.after, self.grace) == (other.before, other.after, other.grace)

    def __hash__(self) -> int:
        return hash((self.before, self.after, self.grace))

    def __repr__(self) -> str:
        return f"JoinWindows(before={self.before}, after={self.after}, grace={self.grace})"
