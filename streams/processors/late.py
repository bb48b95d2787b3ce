"""Late records: counted exactly, and logged at WARNING without flooding the log.

A windowed operator drops a record that arrives after its window closed.  Each
drop counts in the task's `late_records` metric.  The log gets the first drop at
once and then at most one line per interval per operator, with the number
dropped since the previous line: a replay with a grace too short for its
disorder drops thousands, and each must not cost a log line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

REPORT_INTERVAL_S = 10.0


class LateDrops:
    """The late-drop count and log of one operator in one task."""

    def __init__(self, operator: str, clock: Callable[[], float] = time.monotonic,
                 interval_s: float = REPORT_INTERVAL_S) -> None:
        self.operator = operator
        self.clock = clock
        self.interval_s = interval_s
        self.unreported = 0
        self._next_report = float("-inf")

    def dropped(self, context: Any, timestamp: int, stream_time: int, grace: int) -> None:
        context.metrics.incr("late_records", 1, self.operator)
        self.unreported += 1
        now = self.clock()
        if now < self._next_report:
            return
        log.warning("task %s: %s dropped %d late record(s) since its last report; the latest at %d, %d ms "
                    "behind stream time %d (grace %d ms)", context.task_id, self.operator, self.unreported,
                    timestamp, stream_time - timestamp, stream_time, grace)
        self.unreported = 0
        self._next_report = now + self.interval_s
