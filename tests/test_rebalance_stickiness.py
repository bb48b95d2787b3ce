"""Rebalances on the real broker move only the tasks they must, and send tasks back to their state.

A worker closes its tasks when their partitions are revoked, before it joins
the new generation; it still reports them to the leader, so the assignment is
sticky.  A restarted worker reports the task stores on its disk, so it gets
back the stateful tasks it ran before.
"""

from __future__ import annotations

import asyncio

from streams import App
from streams.runtime.worker import Worker
from tests.conftest import create_topics, unique_name
from tests.kafka_helpers import FAST_GROUP, wait_for


def count_app(brokers: str, app_id: str, src: str, state_dir) -> App:
    app = App(app_id, brokers=brokers, state_dir=state_dir, commit_interval=0.2, consumer_config=FAST_GROUP)
    app.stream(src).group_by(lambda key, value: key, name="by-key").count(name="counts")
    return app


def stateful(tasks) -> set[str]:
    return {t for t in tasks if t.startswith("1_")}


async def test_members_keep_their_tasks_and_a_restarted_worker_gets_its_stores_back(brokers, tmp_path):
    src, app_id = unique_name("events"), unique_name("sticky")
    await create_topics(brokers, {src: 6})  # 12 tasks: 6 stateless (0_*), 6 counting (1_*)
    workers: dict[str, Worker] = {}
    runners: dict[str, asyncio.Task] = {}

    def start(name: str) -> None:
        workers[name] = count_app(brokers, app_id, src, tmp_path / name).create_worker()
        runners[name] = asyncio.create_task(workers[name].run())

    def split(*names: str, each: int) -> bool:
        return (all(len(workers[n].tasks) == each for n in names)
                and len(set().union(*(workers[n].tasks for n in names))) == 12)

    try:
        start("a")
        await wait_for(lambda: len(workers["a"].tasks) == 12, timeout=40)
        start("b")
        await wait_for(lambda: split("a", "b", each=6), timeout=40)
        two = {n: set(workers[n].tasks) for n in ("a", "b")}

        start("c")
        await wait_for(lambda: split("a", "b", "c", each=4), timeout=40)
        three = {n: set(workers[n].tasks) for n in ("a", "b", "c")}
        assert three["a"] <= two["a"] and three["b"] <= two["b"], "a join took only what the newcomer needs"
        c_stores = stateful(three["c"])
        assert c_stores and all((tmp_path / "c" / app_id / t).is_dir() for t in c_stores)

        workers["c"].stop()
        await runners.pop("c")
        await wait_for(lambda: split("a", "b", each=6), timeout=40)
        assert three["a"] <= set(workers["a"].tasks) and three["b"] <= set(workers["b"].tasks)

        start("c")  # the same state directory: its stores of c_stores are on disk
        await wait_for(lambda: split("a", "b", "c", each=4), timeout=40)
        assert stateful(workers["c"].tasks) == c_stores
    finally:
        for worker in workers.values():
            worker.stop()
        await asyncio.gather(*runners.values(), return_exceptions=True)
