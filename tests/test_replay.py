"""Replay, reset and rebuild through the real `streams` command, against the real broker."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams import App
from streams.runtime.replay import ReplayTarget, parse_duration
from streams.runtime.state_lock import StateDirLock
from tests.conftest import create_topics, unique_name
from tests.kafka_helpers import FAST_GROUP, decoded, produce, read_topic, running
from tests.process_helpers import REPO, WorkerProcess


def cli(brokers: str, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streams", *args, "tests.apps.pipeline:app"], cwd=REPO,
                          env={**os.environ, "STREAMS_BROKERS": brokers, "PYTHONPATH": str(REPO), **env},
                          capture_output=True, text=True, timeout=60)


async def committed(brokers: str, group: str, topic: str, partitions: int) -> dict[int, int | None]:
    consumer = AIOKafkaConsumer(bootstrap_servers=brokers, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return {p: await consumer.committed(TopicPartition(topic, p)) for p in range(partitions)}
    finally:
        await consumer.stop()


def test_parse_duration():
    assert parse_duration("PT1H").total_seconds() == 3600
    assert parse_duration("P1DT30M").total_seconds() == 86400 + 1800
    assert parse_duration("pt90s").total_seconds() == 90


def test_replay_target_echoes_the_moment_in_the_time_zone_it_was_given():
    target = ReplayTarget.from_options(False, "2026-11-28T10:00:00+02:00", None, None)
    assert target.timestamp_ms == 1_795_852_800_000  # 08:00 UTC
    assert target.describe() == "the first offsets at or after 2026-11-28T10:00:00+02:00"
    ago = ReplayTarget.from_options(False, None, "PT1H", None, now=lambda: 1_795_856_400.0)
    assert ago.describe() == "the first offsets at or after 2026-11-28T08:00:00+00:00"


async def test_replay_to_earliest_reproduces_outputs(brokers, tmp_path):
    src, out, app_id = unique_name("in"), unique_name("out"), unique_name("replay")
    await create_topics(brokers, {src: 2, out: 2})
    env = {"TEST_APP_ID": app_id, "TEST_IN": src, "TEST_OUT": out, "TEST_MODE": "count",
           "TEST_STATE_DIR": str(tmp_path / "state"), "TEST_COMMIT_INTERVAL": "0.2",
           "STREAMS_CACHE_MAX_BYTES": "0"}  # one output per input, to compare the replay's outputs
    events = [(f"e{i}", {"user": f"u{i % 7}"}) for i in range(140)]
    await produce(brokers, src, events)
    worker = WorkerProcess(brokers, env, tmp_path / "w1.log").start()
    try:
        first = await read_topic(brokers, out, expected=140, timeout=60)
        refused = cli(brokers, env, "replay", "--to-earliest")
        assert refused.returncode == 2 and "active members" in refused.stderr
        assert worker.terminate() == 0
    finally:
        worker.kill()
    dry = cli(brokers, env, "replay", "--to-earliest", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"would set {src}[0] to offset 0" in dry.stdout
    assert await committed(brokers, app_id, src, 2) != {0: 0, 1: 0}
    done = cli(brokers, env, "replay", "--to-earliest")
    assert done.returncode == 0, done.stderr
    assert f"set {src}[0] to offset 0" in done.stdout and f"set {src}[1] to offset 0" in done.stdout
    assert f"delete internal topic {app_id}-counts-changelog" in done.stdout
    assert f"delete internal topic {app_id}-by-user-repartition" in done.stdout
    assert "delete local state" in done.stdout
    assert await committed(brokers, app_id, src, 2) == {0: 0, 1: 0}
    assert not (tmp_path / "state" / app_id).exists()
    worker = WorkerProcess(brokers, env, tmp_path / "w2.log").start()
    try:
        both = await read_topic(brokers, out, expected=280, timeout=60)
        assert worker.terminate() == 0
    finally:
        worker.kill()
    second = both[140:] if len(both) == 280 else both

    def final_counts(records):
        result = {}
        for key, value in decoded(records):
            result[key] = value
        return result

    assert len(both) == 280
    assert sorted(decoded(first)) == sorted(decoded(second))
    assert final_counts(first) == final_counts(second) == {f"u{u}": 20 for u in range(7)}


async def test_replay_by_duration_and_datetime_and_rebuild(brokers, tmp_path):
    src, out, app_id = unique_name("in"), unique_name("out"), unique_name("replay")
    await create_topics(brokers, {src: 1, out: 1})
    env = {"TEST_APP_ID": app_id, "TEST_IN": src, "TEST_OUT": out, "TEST_STATE_DIR": str(tmp_path / "state")}
    now_ms = int(time.time() * 1000)
    old = [(f"old{i}", {"i": i}, now_ms - 3 * 3600_000) for i in range(5)]
    recent = [(f"new{i}", {"i": i}, now_ms - 60_000) for i in range(3)]
    await produce(brokers, src, old + recent)
    by_duration = cli(brokers, env, "replay", "--by-duration", "PT1H")
    assert by_duration.returncode == 0, by_duration.stderr
    assert await committed(brokers, app_id, src, 1) == {0: 5}
    moment = time.strftime("%Y-%m-%dT%H:%M:%S+02:00", time.gmtime(now_ms / 1000 - 2 * 3600))  # 4 hours ago
    by_datetime = cli(brokers, env, "replay", "--to-datetime", moment)
    assert by_datetime.returncode == 0, by_datetime.stderr
    assert f"to the first offsets at or after {moment}:" in by_datetime.stdout
    assert await committed(brokers, app_id, src, 1) == {0: 0}
    by_offset = cli(brokers, env, "replay", "--to-offset", "6")
    assert by_offset.returncode == 0 and await committed(brokers, app_id, src, 1) == {0: 6}
    bad = cli(brokers, env, "replay", "--by-duration", "an hour")
    assert bad.returncode == 2 and "ISO-8601" in bad.stderr
    (tmp_path / "state" / app_id / "0_0").mkdir(parents=True)
    rebuilt = cli(brokers, env, "rebuild")
    assert rebuilt.returncode == 0 and "delete local state" in rebuilt.stdout
    assert not (tmp_path / "state" / app_id).exists()


async def test_rebuild_refuses_while_the_app_runs(brokers, tmp_path):
    src, out, app_id = unique_name("in"), unique_name("out"), unique_name("rebuild")
    await create_topics(brokers, {src: 1, out: 1})
    env = {"TEST_APP_ID": app_id, "TEST_IN": src, "TEST_OUT": out, "TEST_STATE_DIR": str(tmp_path / "state"),
           "TEST_MODE": "count"}
    await produce(brokers, src, [(f"e{i}", {"user": f"u{i % 2}"}) for i in range(10)])
    app = App(app_id, brokers=brokers, state_dir=tmp_path / "state", commit_interval=0.2, consumer_config=FAST_GROUP)
    app.stream(src).group_by(lambda k, v: v["user"], name="by-user").count(name="counts").to_stream().to(out)
    async with running(app) as worker:
        await read_topic(brokers, out, expected=10)
        refused = cli(brokers, env, "rebuild")
        assert refused.returncode == 2
        assert refused.stderr.strip().splitlines() == [
            f"error: application {app_id!r} has 1 active members",
            "hint: stop every worker before rebuilding (its stores would be deleted under it)"]
        assert (tmp_path / "state" / app_id / "1_0").is_dir()
        await produce(brokers, src, [(f"e{i}", {"user": f"u{i % 2}"}) for i in range(10, 20)])
        got = await read_topic(brokers, out, expected=20)
        assert worker.tasks and worker.consumer is not None
    assert max(v for k, v in decoded(got) if k == "u0") == 10
    rebuilt = cli(brokers, env, "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert not (tmp_path / "state" / app_id).exists()


def test_rebuild_without_a_broker_still_refuses_while_a_local_worker_holds_the_state(tmp_path):
    """No broker to ask about the group: the state folder's lock guards this machine's workers."""
    app_id = unique_name("rebuild-offline")
    env = {"TEST_APP_ID": app_id, "TEST_IN": "in", "TEST_OUT": "out", "TEST_STATE_DIR": str(tmp_path)}
    config = App(app_id, state_dir=tmp_path).config
    (config.state_path("0_0")).mkdir(parents=True)
    held = StateDirLock(config)
    held.acquire()
    try:
        refused = cli("127.0.0.1:1", env, "rebuild")
    finally:
        held.release()
    assert refused.returncode == 2 and "is in use by another worker" in refused.stderr
    assert config.state_path("0_0").is_dir()
    rebuilt = cli("127.0.0.1:1", env, "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "cannot be reached" in rebuilt.stdout and not config.state_path().exists()
