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

Between batches, a worker's live young objects (the fetched records waiting in
the consumer, the output waiting to be sent: about 10,000 at a time) are more
than Python's young-generation threshold of 700, so with the default every
batch ended in a collection that scanned them all, about 7% of a stateless
worker's CPU.  While a worker runs, the threshold is raised (the
gc_young_threshold setting, 50,000 by default) above that live set: young
collections then happen only when 50,000 more container objects are alive
than were freed, which bounds how much cyclic garbage can wait.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

_holds: list[int] = []
_python_thresholds = gc.get_threshold()


def hold_young_threshold(threshold: int) -> None:
    """Collect the young generation only after `threshold` net allocations, until released (0: no change)."""
    global _python_thresholds
    if threshold <= 0:
        return
    if not _holds:
        _python_thresholds = gc.get_threshold()
    _holds.append(threshold)
    _apply()


def release_young_threshold(threshold: int) -> None:
    """Undo one hold_young_threshold(threshold); Python's own thresholds return with the last one."""
    if threshold > 0 and threshold in _holds:
        _holds.remove(threshold)
        _apply()


def _apply() -> None:
    young, *older = _python_thresholds
    gc.set_threshold(max([young, *_holds]), *older)


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
