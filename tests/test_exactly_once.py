"""Exactly-once against the real broker: transactions, aborts, fencing and crashes."""

from __future__ import annotations

import asyncio
import signal

import pytest

from streams import App
from streams.transport import OutRecord, TopicPartition
from streams.transport.kafka import KafkaTransport
from tests.conftest import create_topics, unique_name
from tests.kafka_helpers import FAST_GROUP, decoded, produce, read_topic, running, wait_for
from tests.process_helpers import WorkerProcess

GUARANTEES = pytest.mark.parametrize("guarantee", ["exactly_once_v2", "exactly_once"])


def eos_app(brokers: str, app_id: str, state_dir, guarantee: str, **kwargs) -> App:
    return App(app_id, brokers=brokers, state_dir=state_dir, processing_guarantee=guarantee,
               consumer_config=FAST_GROUP, **kwargs)


def per_key_updates(records) -> dict[str, list]:
    updates: dict[str, list] = {}
    for key, value in decoded(records):
        updates.setdefault(key, []).append(value)
    return updates


@GUARANTEES
async def test_repartition_changelog_and_output_commit_together(brokers, tmp_path, guarantee):
    src, out, app_id = unique_name("in"), unique_name("out"), unique_name("eos")
    await create_topics(brokers, {src: 3, out: 3})
    app = eos_app(brokers, app_id, tmp_path, guarantee, cache_max_bytes=0)  # every update, to check each one's order
    app.stream(src).group_by(lambda k, v: v["user"], name="by-user").aggregate(
        lambda: {"count": 0, "sum": 0}, lambda user, v, agg: {"count": agg["count"] + 1, "sum": agg["sum"] + v["id"]},
        name="totals",
    ).to_stream().to(out)
    events = [(f"e{i}", {"user": f"u{i % 6}", "id": i}) for i in range(600)]
    await produce(brokers, src, events)
    async with running(app) as worker:
        got = await read_topic(brokers, out, expected=600, timeout=60)
        assert worker.commit_stats.commits > 0
    updates = per_key_updates(got)
    for u in range(6):
        ids = list(range(u, 600, 6))
        assert [v["count"] for v in updates[f"u{u}"]] == list(range(1, len(ids) + 1))
        assert updates[f"u{u}"][-1]["sum"] == sum(ids)
    for topic in (f"{app_id}-by-user-repartition", f"{app_id}-totals-changelog"):
        committed = await read_topic(brokers, topic, expected=None, isolation_level="read_committed")
        uncommitted = await read_topic(brokers, topic, expected=None, isolation_level="read_uncommitted")
        assert committed and len(committed) == len(uncommitted)
    changelog = await read_topic(brokers, f"{app_id}-totals-changelog", expected=None)
    final = {k: v for k, v in decoded(changelog)}
    assert final == {f"u{u}": updates[f"u{u}"][-1] for u in range(6)}


@GUARANTEES
async def test_exception_mid_batch_aborts_and_nothing_of_it_is_visible(brokers, tmp_path, guarantee):
    src, out, app_id = unique_name("in"), unique_name("out"), unique_name("eos")
    await create_topics(brokers, {src: 1, out: 1})
    app = eos_app(brokers, app_id, tmp_path, guarantee, on_error="fail", commit_interval=30)
    app.stream(src).map_values(lambda v: 100 // v).to(out)
    await produce(brokers, src, [(f"k{i}", i + 1) for i in range(50)])

    worker = app.create_worker()
    await worker.start()
    loop = asyncio.create_task(worker.loop())  # the loop starts the tasks the group assigns
    await wait_for(lambda: worker.tasks)
    await wait_for(lambda: worker.tasks["0_0"].offsets, timeout=20)
    async with worker._lock:
        await worker._commit()  # the first 50 records commit
    await produce(brokers, src, [(f"k{i}", i + 1) for i in range(50, 80)])
    await wait_for(lambda: sum(worker.tasks["0_0"].offsets.values()) == 80, timeout=20)  # sent, not committed
    await produce(brokers, src, [("zero", 0)])
    with pytest.raises(Exception, match="ZeroDivisionError"):
        await asyncio.wait_for(loop, 30)
    await worker.shutdown(commit=False)
    visible = await read_topic(brokers, out, expected=None, timeout=10)
    assert sorted(k for k, _ in decoded(visible)) == sorted(f"k{i}" for i in range(50))
    everything = await read_topic(brokers, out, expected=None, timeout=10, isolation_level="read_uncommitted")
    assert len(everything) > 50, "the aborted batch was written, and stays invisible to read_committed readers"


@GUARANTEES
async def test_zombie_worker_is_fenced(brokers, tmp_path, guarantee):
    src, out, app_id = unique_name("in"), unique_name("out"), unique_name("zombie")
    await create_topics(brokers, {src: 4, out: 4})
    env = {"TEST_APP_ID": app_id, "TEST_IN": src, "TEST_OUT": out, "TEST_MODE": "ids", "TEST_GUARANTEE": guarantee,
           "TEST_COMMIT_INTERVAL": "0.1", "STREAMS_CACHE_MAX_BYTES": "0"}  # every update, each checked below
    zombie = WorkerProcess(brokers, {**env, "TEST_STATE_DIR": str(tmp_path / "z")}, tmp_path / "z.log").start()
    events = [(f"e{i}", {"user": f"u{i % 8}", "id": i}) for i in range(2000)]
    try:
        await produce(brokers, src, events[:500])
        await read_topic(brokers, out, expected=500, timeout=60)
        survivor = WorkerProcess(brokers, {**env, "TEST_STATE_DIR": str(tmp_path / "s")}, tmp_path / "s.log").start()
        await asyncio.sleep(4)  # let both workers share the tasks
        zombie.signal(signal.SIGSTOP)
        await produce(brokers, src, events[500:1500])
        await asyncio.sleep(9)  # the session times out; the survivor takes every task
        zombie.signal(signal.SIGCONT)  # the zombie wakes up holding batches of tasks it lost
        await produce(brokers, src, events[1500:])
        deadline = asyncio.get_running_loop().time() + 120
        while True:  # on a loaded machine the survivor may still be catching up: read until complete or late
            records = await read_topic(brokers, out, expected=None, timeout=30, idle=3)
            longest = {}
            for key, ids in decoded(records):
                longest[key] = max(longest.get(key, 0), len(ids))
            if sum(longest.values()) >= 2000 or asyncio.get_running_loop().time() > deadline:
                break
        survivor.terminate()
        zombie.terminate()
    finally:
        zombie.signal(signal.SIGCONT)
        zombie.kill()
        if "survivor" in locals():
            survivor.kill()
    latest = {}
    for key, ids in decoded(records):
        assert len(ids) == len(set(ids)), f"{key} saw an input twice"
        if len(ids) > len(latest.get(key, [])):
            latest[key] = ids
    for u in range(8):
        assert sorted(latest[f"u{u}"]) == list(range(u, 2000, 8))
    updates = per_key_updates(records)
    for key, values in updates.items():
        sizes = [len(v) for v in values]
        assert sizes == list(range(1, len(sizes) + 1)), f"{key}: an update was emitted twice or lost"


class NoListener:
    async def on_partitions_revoked(self, revoked) -> None:
        pass

    async def on_partitions_assigned(self, assigned) -> None:
        pass


async def test_a_task_waits_for_an_older_owners_transaction_that_holds_its_offsets(brokers, tmp_path):
    src, out, app_id = unique_name("in"), unique_name("out"), unique_name("eos")
    await create_topics(brokers, {src: 1, out: 1})
    await produce(brokers, src, [(f"k{i}", i) for i in range(10)])
    transport = KafkaTransport(brokers)
    # An older owner of the task: a member of the app's group whose transaction holds offset 4 of the input.
    older = transport.consumer(app_id, isolation_level="read_committed", config=FAST_GROUP)
    await older.start()
    older.subscribe([src], NoListener())
    for _ in range(300):
        if older.group_metadata().generation_id > 0:
            break
        await older.poll(100)
    producer = transport.producer(transactional_id=unique_name("older"))
    await producer.start()
    await producer.begin_transaction()
    await producer.send_many([OutRecord(out, 0, b"older", b'"from the older owner"', None, ())])
    await producer.send_offsets_to_transaction({TopicPartition(src, 0): 4}, older.group_metadata())
    await older.stop()  # it leaves the group with its transaction open

    app = eos_app(brokers, app_id, tmp_path, "exactly_once_v2")
    app.stream(src).map_values(lambda v: v * 10).to(out)
    worker = app.create_worker()
    runner = asyncio.create_task(worker.run())
    try:
        await wait_for(lambda: worker.waiting == {"0_0"}, timeout=30)
        await asyncio.sleep(1.0)
        assert "0_0" not in worker.tasks, "the task must not start from offsets about to change"
        await producer.commit_transaction()
        await wait_for(lambda: "0_0" in worker.tasks and not worker.waiting, timeout=10)
        got = await read_topic(brokers, out, expected=7, timeout=30)
    finally:
        await producer.stop()
        worker.stop()
        await runner
    assert decoded(got) == [("older", "from the older owner")] + [(f"k{i}", i * 10) for i in range(4, 10)]
