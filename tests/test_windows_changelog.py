"""What a window store sends to its changelog, against the real broker: windows and bookkeeping, no time index.

The time index is derived from the windows, so it is written locally only and
restore (and standbys) rebuild it from the windows they replay.  A wiped state
directory must still bring back the windows, their index, and the final results
of the windows that were waiting to close.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from streams import App
from streams.windows import Hopping, Session, Sliding, Tumbling
from streams.windows.store import INDEX, META, WINDOWS, WindowStore, index_key
from tests.conftest import create_topics, unique_name
from tests.kafka_helpers import FAST_GROUP, produce, read_topic, running, wait_for
from tests.test_standby import standbys_caught_up
from tests.test_windows_e2e import results

BASE = time.time_ns() // 1_000_000 // 600_000 * 600_000 - 600_000  # as in test_windows_e2e: a minute multiple


def windowed_app(brokers: str, app_id: str, src: str, out: str, state_dir, standbys: int = 0) -> App:
    app = App(app_id, brokers=brokers, state_dir=state_dir, commit_interval=0.2, consumer_config=FAST_GROUP,
              num_standby_replicas=standbys)
    table = app.stream(src).group_by_key().window(Tumbling(10_000)).count(name="counts", emit="final",
                                                                            retention=20_000)
    table.to(out)
    return app


def local_entries(stores) -> dict[bytes, bytes]:
    """Every committed entry of the given task stores, read from their local stores."""
    return {key: value for store in stores for key, value in store.local.items()}


def assert_index_matches_windows(entries: dict[bytes, bytes]) -> None:
    windows = [key for key in entries if key[:1] == WINDOWS]
    assert windows, "the store holds windows"
    assert {key for key in entries if key[:1] == INDEX} == {index_key(key) for key in windows}


async def test_the_changelog_holds_no_index_and_a_wiped_restart_rebuilds_it(brokers, tmp_path):
    src, out = unique_name("clicks"), unique_name("finals")
    await create_topics(brokers, {src: 1, out: 1})
    app_id = unique_name("win-log")
    app = windowed_app(brokers, app_id, src, out, tmp_path / "first")
    # Windows (start: keys): 0: a b c, 10 s: a b, 20 s: a, 30 s: a b.  Store time reaches 30 s, so retention
    # (20 s) deletes the windows at 0 and 10 s; stream time 35 s closes the one at 20 s, and 30 s stays open.
    await produce(brokers, src, [("a", 1, BASE + 1_000), ("b", 1, BASE + 2_000), ("c", 1, BASE + 3_000),
                                 ("a", 1, BASE + 11_000), ("b", 1, BASE + 12_000), ("a", 1, BASE + 21_000),
                                 ("a", 1, BASE + 31_000), ("b", 1, BASE + 33_000), ("a", 1, BASE + 35_000)])
    async with running(app) as worker:
        first = await read_topic(brokers, out, expected=6)
        await wait_for(lambda: worker.metrics.get("expired_windows") == 5)
        await wait_for(lambda: all(not s.cache.dirty() for t in worker.tasks.values() for s in t.stores.values()))
        before = local_entries(s for t in worker.tasks.values() for s in t.stores.values())
    assert sorted(results(first)) == [("a", 0, 10_000, 1), ("a", 10_000, 20_000, 1), ("a", 20_000, 30_000, 1),
                                      ("b", 0, 10_000, 1), ("b", 10_000, 20_000, 1), ("c", 0, 10_000, 1)]
    assert_index_matches_windows(before)

    changelog = await read_topic(brokers, f"{app_id}-counts-changelog", idle=1.0)
    spaces = {r.key[:1] for r in changelog}
    assert spaces == {WINDOWS, META}, "the time index stays out of the changelog"
    logged = [r for r in changelog if r.key[:1] == WINDOWS]
    assert len({r.key for r in logged}) == 8  # every window that was made
    assert len([r for r in logged if r.value is None]) == 5  # retention's deletes are still logged
    # Before the index left the changelog, each window also sent its index entry and its deletion:
    # 8 + 5 more records.  Each window's count is written once per commit it changed in.
    assert len(logged) / 8 < (len(logged) + 8 + 5) / 8

    # A wiped state directory: restore replays windows and bookkeeping and derives the index.
    app = windowed_app(brokers, app_id, src, out, tmp_path / "second")
    async with running(app) as worker:
        assert any(r.restored for r in worker.restore_results)
        stores = [s for t in worker.tasks.values() for s in t.stores.values()]
        assert local_entries(stores) == before
        windows = app.store("counts").fetch_all()
        assert [(w.key, w.start - BASE, n) for w, n in windows] == [("a", 20_000, 1), ("a", 30_000, 2),
                                                                     ("b", 30_000, 1)]
        # Stream time 45 s closes the window at 30 s, found through the rebuilt index.
        await produce(brokers, src, [("c", 1, BASE + 45_000)])
        everything = await read_topic(brokers, out, expected=8)
        await wait_for(lambda: worker.metrics.get("expired_windows") == 1)  # the window at 20 s
        await wait_for(lambda: all(not s.cache.dirty() for s in stores))
        assert_index_matches_windows(local_entries(stores))
    assert sorted(results(everything[6:])) == [("a", 30_000, 40_000, 2), ("b", 30_000, 40_000, 1)]


KINDS = {
    "hopping": lambda grouped: grouped.window(Hopping(10_000, 5_000)).count(name="counts", retention=15_000),
    "sliding": lambda grouped: grouped.window(Sliding(5_000)).count(name="counts", retention=10_000),
    "session": lambda grouped: grouped.window(Session(3_000)).count(name="counts", retention=3_000),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
async def test_every_window_kind_restores_its_windows_and_index_from_the_changelog(brokers, tmp_path, kind):
    """Sessions merge (a logged delete of each merged session) and every kind expires windows; restore replays
    it all into a wiped store, and must arrive at the same windows and index as the store that wrote it."""
    src = unique_name("clicks")
    await create_topics(brokers, {src: 1})
    app_id = unique_name(f"win-{kind}")

    def build(state_dir) -> App:
        app = App(app_id, brokers=brokers, state_dir=state_dir, commit_interval=0.2, consumer_config=FAST_GROUP)
        KINDS[kind](app.stream(src).group_by_key())
        return app

    times = [0, 2_000, 4_000, 1_000, 9_000, 7_000, 12_000, 30_000, 31_000, 29_000, 45_000, 60_000, 62_000]
    await produce(brokers, src, [(key, 1, BASE + t) for t in times for key in ("a", "b")])
    async with running(build(tmp_path / "first")) as worker:
        stores = [s for t in worker.tasks.values() for s in t.stores.values()]
        # Every record processed and committed: the committed stream time is the last record's.
        await wait_for(lambda: WindowStore(stores[0].local).stream_time() == BASE + times[-1])
        before = local_entries(stores)
    assert worker.metrics.get("expired_windows") > 0
    assert_index_matches_windows(before)
    changelog = await read_topic(brokers, f"{app_id}-counts-changelog", idle=1.0)
    assert {r.key[:1] for r in changelog} == {WINDOWS, META}
    async with running(build(tmp_path / "second")) as worker:
        assert local_entries(s for t in worker.tasks.values() for s in t.stores.values()) == before


async def test_a_standby_derives_the_index_of_the_windows_it_follows(brokers, tmp_path):
    src, out = unique_name("clicks"), unique_name("finals")
    await create_topics(brokers, {src: 2, out: 1})
    app_id = unique_name("win-standby")
    apps = [windowed_app(brokers, app_id, src, out, tmp_path / name, standbys=1) for name in ("a", "b")]
    workers = [app.create_worker() for app in apps]
    runners = [asyncio.create_task(w.run()) for w in workers]
    try:
        await wait_for(lambda: all(len(w.tasks) == 1 for w in workers), timeout=40)
        records = [(f"k{i % 7}", i, BASE + i * 1_000) for i in range(40)]
        await produce(brokers, src, records, partition=0)
        await produce(brokers, src, records, partition=1)
        await wait_for(lambda: all(w.standbys.task_ids for w in workers), timeout=30)
        await wait_for(lambda: sum(w.metrics.get("expired_windows") for w in workers) > 0, timeout=30)
        for worker in workers:
            await standbys_caught_up(worker, timeout=20)
        for worker, other in (workers, workers[::-1]):
            for task_id, standby in worker.standbys.stores.items():
                active = local_entries(other.tasks[task_id].stores.values())
                copy = local_entries(standby.values())
                assert_index_matches_windows(copy)
                assert copy == active
    finally:
        for worker in workers:
            worker.stop()
        await asyncio.gather(*runners, return_exceptions=True)
