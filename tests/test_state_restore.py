"""StoreRestorer, needs_wipe and RestoreProgress: restore logic without a broker."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from streams.state.memory import InMemoryStore
from streams.state.restore import RestoreProgress, StoreRestorer, needs_wipe
from streams.state.rocksdb import RocksDBStore
from streams.state.store import Change


class RecordingStore(InMemoryStore):
    def __init__(self) -> None:
        super().__init__("s")
        self.batches: list[tuple[int, int | None]] = []  # (size, checkpoint)
        self.wipes = 0

    def write_batch(self, items: Iterable[Change], checkpoint: int | None = None) -> None:
        items = list(items)
        self.batches.append((len(items), checkpoint))
        super().write_batch(items, checkpoint)

    def wipe(self) -> None:
        self.wipes += 1
        super().wipe()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("checkpoint", "start", "end", "wipe"),
    [
        (None, 0, None, True),  # no checkpoint: contents of unknown origin
        (None, 50, 100, True),
        (0, 0, None, False),
        (50, 10, 100, False),
        (10, 10, 100, False),  # exactly at the start: nothing was lost
        (9, 10, 100, True),  # retention or compaction moved the start past the checkpoint
        (100, 10, 100, False),  # fully caught up
        (101, 10, 100, True),  # ahead of the changelog: it was recreated
    ],
)
def test_needs_wipe(checkpoint, start, end, wipe):
    assert needs_wipe(checkpoint, start, end) is wipe
    assert StoreRestorer.needs_wipe(checkpoint, start, end) is wipe


def test_apply_writes_large_batches_each_with_its_checkpoint():
    store = RecordingStore()
    restorer = StoreRestorer(store, batch_size=10_000)
    records = ((1000 + i, b"k%06d" % i, b"v%d" % i) for i in range(25_000))
    assert restorer.apply(records) == 25_000
    assert store.batches == [(10_000, 11_000), (10_000, 21_000), (5_000, 26_000)]
    assert restorer.restored == 25_000
    assert restorer.position == 26_000
    assert store.checkpoint() == 26_000
    assert store.approximate_count() == 25_000


def test_checkpoint_follows_the_last_offset_across_gaps():
    store = RecordingStore()
    restorer = StoreRestorer(store, batch_size=2)
    restorer.apply([(3, b"a", b"1"), (7, b"b", b"2"), (20, b"c", b"3")])
    assert store.batches == [(2, 8), (1, 21)]
    assert store.checkpoint() == 21


def test_tombstones_delete_and_later_records_win():
    store = RecordingStore()
    store.write_batch([(b"old", b"x")], 5)
    restorer = StoreRestorer(store)
    restorer.apply([(5, b"a", b"1"), (6, b"old", None), (7, b"a", b"2"), (8, b"b", b"3"), (9, b"b", None)])
    assert list(store.items()) == [(b"a", b"2")]
    assert store.checkpoint() == 10
    assert restorer.restored == 5


def test_apply_nothing_writes_nothing():
    store = RecordingStore()
    restorer = StoreRestorer(store)
    assert restorer.apply([]) == 0
    assert store.batches == [] and restorer.restored == 0 and store.checkpoint() is None


def test_apply_accumulates_over_calls():
    store = RecordingStore()
    restorer = StoreRestorer(store, batch_size=3)
    restorer.apply((i, b"%d" % i, b"v") for i in range(4))
    restorer.apply((i, b"%d" % i, b"v") for i in range(4, 6))
    assert restorer.restored == 6 and restorer.position == 6
    assert store.batches == [(3, 3), (1, 4), (2, 6)]


def test_interrupted_restore_keeps_the_completed_batches():
    store = RecordingStore()
    restorer = StoreRestorer(store, batch_size=10)

    def records():
        for i in range(15):
            yield i, b"k%02d" % i, b"v"
        raise ConnectionError("broker went away")

    with pytest.raises(ConnectionError):
        restorer.apply(records())
    assert restorer.restored == 10
    assert store.checkpoint() == 10 and restorer.position == 10
    assert store.approximate_count() == 10


def test_start_offset_wipes_stores_that_cannot_be_caught_up():
    fresh = RecordingStore()
    restorer = StoreRestorer(fresh)
    assert restorer.start_offset(0, 100) == 0
    assert restorer.wiped and fresh.wipes == 1

    behind = RecordingStore()
    behind.write_batch([(b"stale", b"x")], 40)
    restorer = StoreRestorer(behind)
    assert restorer.start_offset(50, 100) == 50
    assert restorer.wiped and list(behind.items()) == [] and behind.checkpoint() is None

    current = RecordingStore()
    current.write_batch([(b"k", b"v")], 70)
    restorer = StoreRestorer(current)
    assert restorer.start_offset(50, 100) == 70
    assert not restorer.wiped and current.wipes == 0 and list(current.items()) == [(b"k", b"v")]


def test_progress_uses_the_injected_clock():
    clock = FakeClock()
    store = RecordingStore()
    store.write_batch([], 100)
    restorer = StoreRestorer(store, batch_size=1000, clock=clock)
    assert restorer.start_offset(0, 10_100) == 100
    assert restorer.progress(10_100) == RestoreProgress(restored=0, remaining=10_000, rate=0.0)
    assert restorer.progress(10_100).eta_seconds is None

    clock.now += 2.0
    restorer.apply((100 + i, b"%d" % i, b"v") for i in range(4000))
    progress = restorer.progress(10_100)
    assert progress == RestoreProgress(restored=4000, remaining=6000, rate=2000.0)
    assert progress.eta_seconds == 3.0

    clock.now += 3.0
    restorer.apply((4100 + i, b"%d" % i, b"v") for i in range(6000))
    assert restorer.progress(10_100) == RestoreProgress(restored=10_000, remaining=0, rate=2000.0)
    assert restorer.progress(10_100).eta_seconds == 0.0


def test_batch_size_must_be_positive():
    with pytest.raises(ValueError):
        StoreRestorer(InMemoryStore("s"), batch_size=0)


def test_restore_into_rocksdb_resumes_after_reopen(tmp_path):
    store = RocksDBStore("s", tmp_path)
    restorer = StoreRestorer(store)
    assert restorer.start_offset(0, 30_000) == 0
    restorer.apply((i, b"k%06d" % (i % 20_000), b"v%d" % i) for i in range(25_000))
    store.close()

    reopened = RocksDBStore("s", tmp_path)
    try:
        restorer = StoreRestorer(reopened)
        assert restorer.start_offset(0, 30_000) == 25_000
        restorer.apply((i, b"k%06d" % i, None) for i in range(25_000, 30_000))
        assert reopened.checkpoint() == 30_000
        assert reopened.get(b"k000001") == b"v20001"
        assert reopened.get(b"k019999") == b"v19999"
        assert sum(1 for _ in reopened.items()) == 20_000
    finally:
        reopened.close()
