"""Timers and crontabs: when each periodic callback is due next.

The schedule is pure arithmetic over an injected clock, so tests can move time
by hand; the worker's loop only asks what is due and sleeps until the next one.

A callback that raises is logged and runs again when next due, as an agent
restarts after an error: one bad tick must not stop the worker.  With
on_error="fail" it stops the worker instead (TimerError).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter

from streams.errors import TimerError

log = logging.getLogger(__name__)


class Clock:
    """Wall-clock time in seconds; replaced by a ManualClock in tests."""

    def now(self) -> float:
        import time

        return time.time()


class ManualClock(Clock):
    def __init__(self, start: float = 0.0) -> None:
        self.current = start

    def now(self) -> float:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += seconds


@dataclass
class Schedule:
    """A callback with the rule that says when it runs next."""

    name: str
    fn: Callable[[], Any]
    next_at: Callable[[float], float]
    on_leader: bool = False
    due: float = 0.0

    def start(self, now: float) -> None:
        self.due = self.next_at(now)

    async def fire(self, now: float) -> None:
        self.due = self.next_at(now)
        result = self.fn()
        if inspect.isawaitable(result):
            await result


def every(interval_s: float) -> Callable[[float], float]:
    if interval_s <= 0:
        raise ValueError("a timer interval must be positive")
    return lambda now: now + interval_s


def cron(expression: str, tz: str | tzinfo | None = None) -> Callable[[float], float]:
    if not croniter.is_valid(expression):
        raise ValueError(f"invalid crontab expression {expression!r}")
    zone = ZoneInfo(tz) if isinstance(tz, str) else (tz or UTC)

    def next_at(now: float) -> float:
        start = datetime.fromtimestamp(now, zone)
        return croniter(expression, start).get_next(datetime).timestamp()

    return next_at


class Scheduler:
    def __init__(self, clock: Clock | None = None, fail_on_error: bool = False) -> None:
        self.clock = clock or Clock()
        self.fail_on_error = fail_on_error
        self.schedules: list[Schedule] = []
        self.failures = 0

    def add(self, schedule: Schedule) -> None:
        self.schedules.append(schedule)

    def start(self) -> None:
        now = self.clock.now()
        for schedule in self.schedules:
            schedule.start(now)

    def due(self, is_leader: bool) -> list[Schedule]:
        now = self.clock.now()
        return [s for s in self.schedules if s.due <= now and (is_leader or not s.on_leader)]

    async def run_due(self, is_leader: bool) -> int:
        fired = 0
        for schedule in self.due(is_leader):
            try:
                await schedule.fire(self.clock.now())
            except Exception as exc:
                self.failures += 1
                if self.fail_on_error:
                    raise TimerError(f"timer {schedule.name!r} failed: {type(exc).__name__}: {exc}") from exc
                log.exception("timer %s failed; it runs again when next due", schedule.name)
            fired += 1
        for schedule in self.schedules:
            if schedule.on_leader and not is_leader and schedule.due <= self.clock.now():
                schedule.due = schedule.next_at(self.clock.now())
        return fired

    def seconds_until_next(self) -> float | None:
        if not self.schedules:
            return None
        return max(0.0, min(s.due for s in self.schedules) - self.clock.now())
