"""A restore progress bar for the terminal, one line per store partition."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


class RestoreProgressBar:
    """Redraws `restoring counts[3] [#####.....] 52% 520,000 done, 480,000 left, 120,000/s` in place."""

    def __init__(self, stream: TextIO = sys.stderr, width: int = 30, every_s: float = 0.2) -> None:
        self.stream = stream
        self.width = width
        self.every_s = every_s
        self._last = 0.0
        self._current: tuple[str, int] | None = None

    def __call__(self, store: str, partition: int, progress: Any) -> None:
        now = time.monotonic()
        finished = progress.remaining == 0
        if not finished and (store, partition) == self._current and now - self._last < self.every_s:
            return
        self._last, self._current = now, (store, partition)
        total = progress.restored + progress.remaining
        fraction = progress.restored / total if total else 1.0
        filled = int(fraction * self.width)
        bar = "#" * filled + "." * (self.width - filled)
        line = (f"\rrestoring {store}[{partition}] [{bar}] {fraction:4.0%} {progress.restored:,} done, "
                f"{progress.remaining:,} left, {progress.rate:,.0f}/s")
        self.stream.write(line + ("\n" if finished else ""))
        self.stream.flush()
