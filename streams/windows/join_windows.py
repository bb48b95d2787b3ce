"""JoinWindows: how far apart in event time two records of a stream-stream join may lie."""

from __future__ import annotations

from streams.windows.definitions import Duration, to_ms

LATE_RULES = ("join", "drop")


class JoinWindows:
    """A left record at t joins right records with timestamps in [t - before, t + after].

    Seen from the right, a record at r joins left records in [r - after, r + before].
    grace is how long, in stream time, a record's window stays open for records that
    arrive out of order: a left record's window closes once stream time passes
    t + after + grace, a right record's once it passes r + before + grace.  An unmatched
    record's result of a left or outer join waits for its window to close.

    late says what happens to records that arrive after a window closed:

    - "join" (the default, Kafka Streams' rules): each side keeps its records for
      before + after + grace behind the newest one, and a record joins every record of the
      other side still kept, even one whose window closed; so an unmatched result can be
      followed by a match, and a record that arrives after its own window closed without a
      match gets its unmatched result at once;
    - "drop": a record leaves its side when its window closes, and a record that arrives
      after its own window closed is dropped (late_records); every unmatched result is final.
    """

    __slots__ = ("before", "after", "grace", "late")

    def __init__(self, before: Duration, after: Duration | None = None, grace: Duration = 0, *,
                 late: str = "join") -> None:
        self.before = to_ms(before, "before")
        self.after = self.before if after is None else to_ms(after, "after")
        self.grace = to_ms(grace, "grace")
        if late not in LATE_RULES:
            raise ValueError(f"late must be one of {LATE_RULES}, got {late!r}")
        self.late = late

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
        """How long, behind the newest record of a side, its records are kept: before + after + grace."""
        return self.before + self.after + self.grace

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, JoinWindows):
            return NotImplemented
        return (self.before, self.after, self.grace, self.late) == (other.before, other.after, other.grace,
                                                                    other.late)

    def __hash__(self) -> int:
        return hash((self.before, self.after, self.grace, self.late))

    def __repr__(self) -> str:
        late = "" if self.late == "join" else f", late={self.late!r}"
        return f"JoinWindows(before={self.before}, after={self.after}, grace={self.grace}{late})"
