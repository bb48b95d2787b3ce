"""Standby replicas against the real broker: a warm takeover restores far less than a cold one."""

from __future__ import annotations

import asyncio

from streams import App
from tests.conftest import create_topics, unique_name
from tests.kafka_helpers import FAST_GROUP, produce, wait_for


def count_app(brokers: str, app_id: str, src: str, state_dir, standbys: int) -> App:
    app = App(app_id, brokers=brokers, state_dir=state_dir, commit_interval=0.2, consumer_config=FAST_GROUP,
              num_standby_replicas=standbys)
    app.stream(src).group_by_key().count(name="counts")
    return app


async def standbys_caught_up(worker, timeout: float) -> None:
    """Wait until every standby store's checkpoint is its changelog's end, read afresh each time: the
    end read once could predate the active worker's first commit of its changelog (then it was 0)."""
    stores = [s for by_name in worker.standbys.stores.values() for s in by_name.values()]
    async with asyncio.timeout(timeout):
        while True:
            ends = await worker._standby_consumer.end_offsets([s.changelog for s in stores])
            if all(ends[s.changelog] > 0 and s.checkpoint() == ends[s.changelog] for s in stores):
                return
            await asyncio.sleep(0.1)


async def takeover_restored(brokers: str, tmp_path, standbys: int) -> tuple[int, dict]:
    """Run two workers, stop one, and return how many records the survivor restored to take over."""
    src, app_id = unique_name("events"), unique_name("standby")
    await create_topics(brokers, {src: 4})
    apps = [count_app(brokers, app_id, src, tmp_path / name, standbys) for name in ("a", "b")]
    workers = [app.create_worker() for app in apps]
    runners = [asyncio.create_task(w.run()) for w in workers]
    first, second = workers
    try:
        await wait_for(lambda: len(first.tasks) == 2 and len(second.tasks) == 2, timeout=40)
        # Produced only once the tasks are split: a worker that ran all four tasks before the other
        # joined would hold current state for the tasks it later takes back, and restore nothing.
        await produce(brokers, src, [(f"key-{i % 500}", i) for i in range(3000)])

        def total() -> int:
            return sum(n for _, n in apps[0].store("counts").items())  # the view spans both workers

        await wait_for(lambda: total() == 3000, timeout=30)
        if standbys:
            await wait_for(lambda: second.standbys.task_ids == set(first.tasks), timeout=20)
            await standbys_caught_up(second, timeout=20)
        moved = set(first.tasks)
        before = len(second.restore_results)
        first.stop()
        await runners[0]
        await wait_for(lambda: len(second.tasks) == 4, timeout=40)
        restored = sum(r.restored for r in second.restore_results[before:])
        counts = dict(apps[1].store("counts").items())
        assert sum(counts.values()) == 3000 and len(counts) == 500
        assert moved <= set(second.tasks)
        return restored, counts
    finally:
        for worker in workers:
            worker.stop()
        await asyncio.gather(*runners, return_exceptions=True)


async def test_standby_takeover_restores_far_fewer_records(brokers, tmp_path):
    warm, warm_counts = await takeover_restored(brokers, tmp_path / "warm", standbys=1)
    cold, cold_counts = await takeover_restored(brokers, tmp_path / "cold", standbys=0)
    assert warm_counts == cold_counts
    assert cold >= 200, "a cold takeover replays the moved tasks' changelogs"
    assert warm * 10 <= cold, f"warm takeover restored {warm}, cold {cold}"
