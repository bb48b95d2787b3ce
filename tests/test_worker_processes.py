"""Workers as processes against the real broker: graceful SIGTERM, and kill -9 with a survivor."""

from __future__ import annotations

import asyncio
import signal

from aiokafka import AIOKafkaConsumer, TopicPartition

from tests.conftest import create_topics, unique_name
from tests.kafka_helpers import decoded, produce, read_topic
from tests.process_helpers import WorkerProcess


async def committed_offsets(brokers: str, group: str, topic: str, partitions: int) -> dict[int, int | None]:
    consumer = AIOKafkaConsumer(bootstrap_servers=brokers, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return {p: await consumer.committed(TopicPartition(topic, p)) for p in range(partitions)}
    finally:
        await consumer.stop()


async def wait_for_output(brokers: str, topic: str, count: int, timeout: float = 60) -> list:
    records = await read_topic(brokers, topic, expected=count, timeout=timeout)
    return records


async def test_sigterm_finishes_commits_and_leaves(brokers, tmp_path):
    src, out, app_id = unique_name("in"), unique_name("out"), unique_name("app")
    await create_topics(brokers, {src: 3, out: 3})
    await produce(brokers, src, [(f"k{i}", {"i": i}) for i in range(300)])
    env = {"TEST_APP_ID": app_id, "TEST_IN": src, "TEST_OUT": out, "TEST_STATE_DIR": str(tmp_path),
           "TEST_COMMIT_INTERVAL": "30"}  # no periodic commit: only the shutdown commits
    worker = WorkerProcess(brokers, env, tmp_path / "worker.log").start()
    try:
        records = await wait_for_output(brokers, out, 300)
        assert len(records) == 300
        assert await committed_offsets(brokers, app_id, src, 3) == {0: None, 1: None, 2: None}
        assert worker.terminate() == 0, worker.log()
    finally:
        worker.kill()
    committed = await committed_offsets(brokers, app_id, src, 3)
    consumer = AIOKafkaConsumer(bootstrap_servers=brokers)
    await consumer.start()
    ends = await consumer.end_offsets([TopicPartition(src, p) for p in range(3)])
    await consumer.stop()
    assert committed == {tp.partition: end for tp, end in ends.items()}, worker.log()


async def produce_steadily(brokers: str, topic: str, start: int, stop: int, per_tick: int, tick_s: float) -> None:
    for first in range(start, stop, per_tick):
        await produce(brokers, topic, [(f"k{i}", {"i": i}) for i in range(first, min(stop, first + per_tick))])
        await asyncio.sleep(tick_s)


async def produce_until_both_work(brokers: str, src: str, out: str, pids: set[int], timeout: float = 60) -> int:
    """Produce batches until the output shows both workers processing; returns how many were produced."""
    produced = 0
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        await produce(brokers, src, [(f"k{i}", {"i": i}) for i in range(produced, produced + 100)])
        produced += 100
        seen = await wait_for_output(brokers, out, produced)
        if {v["worker"] for _, v in decoded(seen[-100:])} == pids:
            return produced
    raise AssertionError("both workers never processed partitions at the same time")


async def test_two_workers_share_partitions_and_survive_kill_9(brokers, tmp_path):
    src, out, app_id = unique_name("in"), unique_name("out"), unique_name("app")
    await create_topics(brokers, {src: 6, out: 6})
    env = {"TEST_APP_ID": app_id, "TEST_IN": src, "TEST_OUT": out, "TEST_COMMIT_INTERVAL": "0.2"}
    first = WorkerProcess(brokers, {**env, "TEST_STATE_DIR": str(tmp_path / "a")}, tmp_path / "a.log").start()
    second = WorkerProcess(brokers, {**env, "TEST_STATE_DIR": str(tmp_path / "b")}, tmp_path / "b.log").start()
    total = 4000
    try:
        produced = await produce_until_both_work(brokers, src, out, {first.pid, second.pid})
        producing = asyncio.create_task(produce_steadily(brokers, src, produced, total - 400, 50, 0.1))
        await asyncio.sleep(0.5)
        first.signal(signal.SIGKILL)  # mid-stream: records keep arriving for its partitions
        first.wait(10)
        await producing
        await produce(brokers, src, [(f"k{i}", {"i": i}) for i in range(total - 400, total)])
        records = await wait_for_output(brokers, out, total, timeout=90)
        by_input = {}
        for _, value in decoded(records):
            by_input.setdefault(value["i"], set()).add(value["worker"])
        assert set(by_input) == set(range(total)), f"lost {sorted(set(range(total)) - set(by_input))[:10]}"
        taken_over = [i for i in range(total - 400, total) if by_input[i] == {second.pid}]
        assert len(taken_over) == 400, "the survivor processes every partition after the kill"
        assert second.alive(), second.log()
    finally:
        first.kill()
        second.kill()


async def test_stateful_survivor_restores_and_results_are_complete(brokers, tmp_path):
    """kill -9 one of two stateful workers: nothing is lost; at-least-once may repeat a few inputs."""
    src, out, app_id = unique_name("in"), unique_name("out"), unique_name("app")
    await create_topics(brokers, {src: 4, out: 4})
    env = {"TEST_APP_ID": app_id, "TEST_IN": src, "TEST_OUT": out, "TEST_MODE": "ids", "TEST_COMMIT_INTERVAL": "0.3",
           "STREAMS_CACHE_MAX_BYTES": "0"}  # one output per input: the reads below count them
    first = WorkerProcess(brokers, {**env, "TEST_STATE_DIR": str(tmp_path / "a")}, tmp_path / "a.log").start()
    second = WorkerProcess(brokers, {**env, "TEST_STATE_DIR": str(tmp_path / "b")}, tmp_path / "b.log").start()
    total, users = 3000, 12
    events = [(f"e{i}", {"user": f"u{i % users}", "id": i}) for i in range(total)]
    try:
        await produce(brokers, src, events[:1000])
        await read_topic(brokers, out, expected=1000, timeout=60)
        producing = asyncio.create_task(
            produce_steadily_events(brokers, src, events[1000:], per_tick=100, tick_s=0.1)
        )
        await asyncio.sleep(0.8)
        first.signal(signal.SIGKILL)
        await producing
        latest: dict[str, list[int]] = {}

        def complete() -> bool:
            return all(set(latest.get(f"u{u}", [])) >= set(range(u, total, users)) for u in range(users))

        deadline = asyncio.get_running_loop().time() + 90
        while not complete() and asyncio.get_running_loop().time() < deadline:
            for key, ids in decoded(await read_topic(brokers, out, expected=None, timeout=5, idle=1.0)):
                if len(ids) >= len(latest.get(key, [])):
                    latest[key] = ids
        assert complete(), second.log()
        duplicates = sum(len(ids) - len(set(ids)) for ids in latest.values())
        assert all(set(ids) == set(range(u, total, users)) for u, ids in
                   ((int(k[1:]), v) for k, v in latest.items()))
        assert duplicates <= 1000, "only inputs after the killed worker's last commit may repeat"
        assert second.alive(), second.log()
    finally:
        first.kill()
        second.kill()


async def produce_steadily_events(brokers: str, topic: str, events: list, per_tick: int, tick_s: float) -> None:
    for start in range(0, len(events), per_tick):
        await produce(brokers, topic, events[start:start + per_tick])
        await asyncio.sleep(tick_s)
