"""The checker: every output and the final tables of tests/faults/app.py against a plain-Python reference.

The reference is computed from the input topic as it was finally written (read
back after the run), so an input the test's own producer had to resend during a
broker fault counts as two inputs, not as a duplicate of the app.

Duplicates and losses are counted per input on the echo output, where every
input has exactly one output; the aggregates then show whether the state saw
each input once: a count above the reference is a duplicate in the table, below
it a loss.  A user's totals updates must count upwards: the record cache may
merge the updates of one commit interval, so counts may skip, but a count that
does not exceed the one before was emitted again (a replay).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

USERS = 500
WINDOW_MS = 10_000


def user_of(record_id: int) -> str:
    return f"u{record_id % USERS}"


@dataclass
class Reference:
    """What the outputs and tables must hold, computed in plain Python from the inputs."""

    ids: Counter[int]
    totals: dict[str, dict[str, int]]
    windows: dict[str, dict[str, int]]

    @classmethod
    def of(cls, inputs: list[tuple[int, int]]) -> Reference:
        """inputs: (id, event timestamp in ms) per input record, as read back from the input topic."""
        ids: Counter[int] = Counter()
        totals: dict[str, dict[str, int]] = {}
        windows: dict[str, dict[str, int]] = {}
        for record_id, timestamp in inputs:
            ids[record_id] += 1
            user = user_of(record_id)
            for table, key in ((totals, user), (windows, f"{user}@{timestamp - timestamp % WINDOW_MS}")):
                row = table.setdefault(key, {"count": 0, "sum": 0})
                row["count"] += 1
                row["sum"] += record_id
        return cls(ids, totals, windows)


@dataclass
class Verdict:
    """Duplicates and losses of one run, per output; exact() when there are none at all."""

    records: int
    duplicates: int = 0  # echo outputs beyond one per input
    losses: int = 0  # inputs with no echo output
    totals_wrong: int = 0  # users whose last totals update differs from the reference
    table_wrong: int = 0  # users whose changelog (the final table) differs from the reference
    counted_twice: int = 0  # inputs counted more than once in the final table
    counted_never: int = 0  # inputs not counted in the final table
    update_repeats: int = 0  # totals updates whose count does not exceed the user's previous one
    windows_wrong: int | None = None  # windows whose last update differs from the reference
    examples: list[str] = field(default_factory=list)

    def exact(self) -> bool:
        return not any((self.duplicates, self.losses, self.totals_wrong, self.table_wrong, self.counted_twice,
                        self.counted_never, self.update_repeats, self.windows_wrong or 0))

    def lossless(self) -> bool:
        """At-least-once: every input reached every output and the tables, some perhaps twice."""
        return not (self.losses or self.counted_never)

    def figures(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "examples"}


def check(reference: Reference, echo: Counter[int], totals_updates: dict[str, list[dict]],
          table: dict[str, dict], windows: dict[str, dict] | None = None) -> Verdict:
    """Compare the outputs (echo ids seen, each user's totals updates in order, the changelog's
    latest rows, the latest window rows) with the reference."""
    verdict = Verdict(records=sum(reference.ids.values()))
    for record_id, expected in reference.ids.items():
        seen = echo.get(record_id, 0)
        verdict.duplicates += max(0, seen - expected)
        verdict.losses += max(0, expected - seen)
    verdict.duplicates += sum(n for record_id, n in echo.items() if record_id not in reference.ids)
    for user, expected in reference.totals.items():
        updates = totals_updates.get(user, [])
        counts = [u["count"] for u in updates]
        verdict.update_repeats += sum(1 for before, after in zip(counts, counts[1:], strict=False) if after <= before)
        if not updates or updates[-1] != expected:
            verdict.totals_wrong += 1
            _example(verdict, f"totals {user}: last update {updates[-1] if updates else None}, expected {expected}")
        final = table.get(user)
        if final != expected:
            verdict.table_wrong += 1
            _example(verdict, f"table {user}: {final}, expected {expected}")
        count = final["count"] if final else 0
        verdict.counted_twice += max(0, count - expected["count"])
        verdict.counted_never += max(0, expected["count"] - count)
    extra_users = set(table) - set(reference.totals)
    verdict.table_wrong += len(extra_users)
    if windows is not None:
        verdict.windows_wrong = sum(1 for key, expected in reference.windows.items() if windows.get(key) != expected)
        verdict.windows_wrong += len(set(windows) - set(reference.windows))
        for key, expected in reference.windows.items():
            if windows.get(key) != expected:
                _example(verdict, f"window {key}: {windows.get(key)}, expected {expected}")
    return verdict


def _example(verdict: Verdict, text: str) -> None:
    if len(verdict.examples) < 5:
        verdict.examples.append(text)
