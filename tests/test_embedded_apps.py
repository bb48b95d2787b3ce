"""Whole applications on the embedded broker: restarts on local://, two workers in one process,
exactly-once, and the example script on every broker."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid

import orjson
import pytest

from streams import App
from streams.transport import TopicPartition, TopicSpec
from streams.transport.embedded import EmbeddedTransport, close_broker
from tests.conftest import unique_name
from tests.kafka_helpers import running
from tests.test_conformance import Target, collect, create, keyed, produce, read_all

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = {"session_timeout_ms": 2000, "heartbeat_interval_ms": 100}


@pytest.fixture
def memory_target() -> Target:
    url = f"memory://apps-{uuid.uuid4().hex[:8]}"
    yield Target("memory", url, EmbeddedTransport(url))
    close_broker(url)


def counting_app(url: str, app_id: str, state_dir, src: str, out: str, **options) -> App:
    app = App(app_id, state_dir=state_dir, commit_interval=0.1, consumer_config=FAST, **options)
    app.configure(brokers=url)
    app.stream(src).group_by(lambda k, v: v["user"], name="by-user").count(name="counts").to_stream().to(out)
    return app


def latest(records) -> dict[str, int]:
    return {r.key.decode(): orjson.loads(r.value) for r in records}


async def test_a_restarted_app_restores_its_counts_from_the_local_changelog(tmp_path):
    url = f"local://{tmp_path / 'broker'}"
    target = Target("local", url, EmbeddedTransport(url))
    src, out, app_id = "clicks", "counts", "restartable"
    await create(target, TopicSpec(src, 2), TopicSpec(out, 2))
    await produce(target, [keyed(src, 2, f"e{i}", {"user": f"u{i % 3}"}) for i in range(30)])
    app = counting_app(url, app_id, tmp_path / "state-1", src, out)
    async with running(app):
        await collect(target, out, 2, lambda rs: latest(rs) == {"u0": 10, "u1": 10, "u2": 10})
        await asyncio.sleep(0.3)  # a commit: offsets and changelog are durable
    close_broker(url)  # the process "ends"; a new one opens the same directory with an empty state dir

    target = Target("local", url, EmbeddedTransport(url))
    await produce(target, [keyed(src, 2, f"f{i}", {"user": f"u{i % 3}"}) for i in range(3)])
    app = counting_app(url, app_id, tmp_path / "state-2", src, out)
    async with running(app) as worker:
        await collect(target, out, 2, lambda rs: latest(rs) == {"u0": 11, "u1": 11, "u2": 11})
        assert sum(r.restored for r in worker.restore_results) == 3, "each user's count came from the changelog"
    close_broker(url)


async def test_two_workers_in_one_process_share_the_tasks(memory_target, tmp_path):
    src, out, app_id = unique_name("in"), unique_name("out"), unique_name("pair")
    await create(memory_target, TopicSpec(src, 4), TopicSpec(out, 4))

    def make(name: str) -> App:
        app = App(app_id, state_dir=tmp_path / name, commit_interval=0.1, consumer_config=FAST)
        app.configure(brokers=memory_target.url)
        app.stream(src).map_values(lambda v: v["n"] * 10).to(out)
        return app

    await produce(memory_target, [keyed(src, 4, f"k{i}", {"n": i}) for i in range(20)])
    async with running(make("a")) as first:
        await collect(memory_target, out, 4, lambda rs: len(rs) >= 20)
        async with running(make("b")) as second:
            await asyncio.wait_for(_until(lambda: len(first.tasks) == 2 and len(second.tasks) == 2), 10)
            assert set(first.tasks).isdisjoint(second.tasks)
            await produce(memory_target, [keyed(src, 4, f"k{i}", {"n": i}) for i in range(20, 40)])
            await collect(memory_target, out, 4, lambda rs: len(rs) >= 40)
        await asyncio.wait_for(_until(lambda: len(first.tasks) == 4), 10)
        await produce(memory_target, [keyed(src, 4, f"k{i}", {"n": i}) for i in range(40, 50)])
        got = await collect(memory_target, out, 4, lambda rs: len(rs) >= 50)
    assert sorted(int(r.value) for r in got) == [i * 10 for i in range(50)], "nothing lost, nothing doubled"


async def _until(condition) -> None:
    while not condition():
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("guarantee", ["exactly_once_v2", "exactly_once"])
async def test_exactly_once_on_the_embedded_broker(memory_target, tmp_path, guarantee):
    src, out, app_id = unique_name("in"), unique_name("out"), unique_name("eos")
    await create(memory_target, TopicSpec(src, 2), TopicSpec(out, 2))
    app = counting_app(memory_target.url, app_id, tmp_path, src, out, processing_guarantee=guarantee)
    await produce(memory_target, [keyed(src, 2, f"e{i}", {"user": f"u{i % 4}"}) for i in range(40)])
    async with running(app) as worker:
        got = await collect(memory_target, out, 2, lambda rs: latest(rs) == {f"u{u}": 10 for u in range(4)})
        assert worker.commit_stats.commits > 0
    for topic in (out, f"{app_id}-by-user-repartition", f"{app_id}-counts-changelog"):
        committed = await read_all(memory_target, topic, 2, isolation_level="read_committed")
        everything = await read_all(memory_target, topic, 2)
        assert committed == everything, f"{topic}: every transaction was committed"
    assert latest(got) == latest(await read_all(memory_target, f"{app_id}-counts-changelog", 2))
    admin = memory_target.transport.admin()
    await admin.start()
    offsets = await admin.committed_offsets(app_id, [TopicPartition(src, p) for p in range(2)])
    assert sum(offsets.values()) == 40, "input offsets were committed inside the transactions"


async def test_a_fenced_task_producer_closes_its_task(memory_target, tmp_path):
    src, out, app_id = unique_name("in"), unique_name("out"), unique_name("zombie")
    await create(memory_target, TopicSpec(src, 1), TopicSpec(out, 1))
    app = App(app_id, state_dir=tmp_path, commit_interval=30, consumer_config=FAST,
              processing_guarantee="exactly_once")
    app.configure(brokers=memory_target.url)
    app.stream(src).map_values(lambda v: v["n"]).to(out)
    async with running(app) as worker:
        usurper = memory_target.transport.producer(transactional_id=f"{app_id}-0_0")
        await usurper.start()  # as a newer owner of task 0_0 would
        await produce(memory_target, [keyed(src, 1, "k", {"n": 1})])
        await asyncio.wait_for(_until(lambda: "0_0" not in worker.tasks), 10)
        await usurper.stop()
    assert await read_all(memory_target, out, isolation_level="read_committed") == []


async def test_a_fenced_worker_producer_aborts_closes_its_tasks_and_takes_them_back(memory_target, tmp_path):
    src, out, app_id = unique_name("in"), unique_name("out"), unique_name("zombie")
    await create(memory_target, TopicSpec(src, 1), TopicSpec(out, 1))
    app = App(app_id, state_dir=tmp_path, commit_interval=30, consumer_config=FAST,
              processing_guarantee="exactly_once_v2")
    app.configure(brokers=memory_target.url)
    app.stream(src).map_values(lambda v: v["n"]).to(out)
    async with running(app) as worker:
        await produce(memory_target, [keyed(src, 1, "k", {"n": 1})])
        await asyncio.wait_for(_until(lambda: worker.producer.open), 10)  # k is in the open transaction
        fenced = worker.producer.producer
        usurper = memory_target.transport.producer(transactional_id=worker.producer.transactional_id)
        await usurper.start()  # fences the worker's producer, as a newer incarnation of the worker would
        await produce(memory_target, [keyed(src, 1, "k", {"n": 2})])
        # the worker closed its task on the fencing, started a new producer, rejoined and took the task back
        await asyncio.wait_for(_until(lambda: worker.producer.producer is not fenced and "0_0" in worker.tasks), 20)
        await usurper.stop()
        await produce(memory_target, [keyed(src, 1, "k", {"n": 3})])
        await asyncio.wait_for(_until(lambda: worker.producer.open), 10)
        async with worker._lock:
            await worker._commit()
    values = [r.value for r in await read_all(memory_target, out, isolation_level="read_committed")]
    assert values == [b"1", b"2", b"3"], "the fenced transaction was aborted and its input processed again"


@pytest.mark.parametrize("broker", ["memory", "local", "kafka"])
def test_the_example_runs_unchanged(broker, request, tmp_path):
    env = dict(os.environ)
    env.pop("STREAMS_BROKERS", None)
    if broker == "local":
        env["STREAMS_BROKERS"] = f"local://{tmp_path / 'wordcount'}"
    elif broker == "kafka":
        env["STREAMS_BROKERS"] = request.getfixturevalue("brokers")
    done = subprocess.run([sys.executable, "examples/wordcount_embedded.py"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "counted 28 words of 4 lines" in done.stdout and "the: 5" in done.stdout
