"""Cyclic garbage collection held off while a batch is being handled.

A batch keeps thousands of young container objects alive at once (records,
decoded values, output records).  With collection on, every 700 allocations
the collector scans them again and promotes the survivors, and the promotions
soon trigger full collections over the whole heap: measured on the stateless
benchmark's hot path, a third of the CPU time.  Nearly all of those objects
die by reference counting as soon as the batch is done, so collecting once
after the batch finds the same garbage for a fraction of the cost.  Garbage
made while paused waits for the next collection after the pause, so a pause
must span one batch, never a wait.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """Disable cyclic collection for the block, unless someone else already disabled it."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
