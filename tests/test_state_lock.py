"""One worker per state folder: a second worker on the same state_dir and app id is refused before it does anything.

Two workers in one process sharing a state folder with standby replicas used to
both die with "StoreError ... already open".
"""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
import pytest

from streams import App
from streams.errors import StateDirLockedError
from streams.runtime.state_lock import StateDirLock
from tests.conftest import create_topics, unique_name
from tests.kafka_helpers import FAST_GROUP, produce, read_topic, running, wait_for
from tests.process_helpers import REPO


def count_app(brokers: str, app_id: str, src: str, out: str, state_dir) -> App:
    app = App(app_id, brokers=brokers, state_dir=state_dir, commit_interval=0.2, consumer_config=FAST_GROUP,
              num_standby_replicas=1)
    app.stream(src).group_by_key().count(name="counts").to_stream().to(out)
    return app


def latest(records) -> dict[str, int]:
    return {r.key.decode(): orjson.loads(r.value) for r in records}


async def test_a_second_worker_on_the_same_state_dir_is_refused_and_never_half_runs(brokers, tmp_path):
    src, out, app_id = unique_name("in"), unique_name("out"), unique_name("lock")
    await create_topics(brokers, {src: 2, out: 1})
    await produce(brokers, src, [(f"k{i % 4}", i) for i in range(20)])
    first = count_app(brokers, app_id, src, out, tmp_path)
    async with running(first) as worker:
        await read_topic(brokers, out, expected=20)
        second = count_app(brokers, app_id, src, out, tmp_path).create_worker()
        with pytest.raises(StateDirLockedError) as refused:
            await second.start()
        await second.shutdown(commit=False)
        message = str(refused.value)
        assert str(tmp_path.resolve() / app_id) in message and "in this process" in message
        assert second.admin is None and second.consumer is None, "the second worker made no clients"
        assert len(await worker.admin.active_members(app_id)) == 1
        await produce(brokers, src, [(f"k{i % 4}", i) for i in range(20, 40)])
        got = await read_topic(brokers, out, expected=40)
        await wait_for(lambda: worker.metrics.get("records_processed") >= 40)
        assert sorted(worker.tasks) == ["0_0", "0_1"]
    assert latest(got) == {f"k{k}": 10 for k in range(4)}
    again = count_app(brokers, app_id, src, out, tmp_path)  # the lock went with the first worker
    async with running(again) as worker:
        assert worker.state_lock.held


def test_the_worker_command_prints_one_error_line_when_the_state_dir_is_taken(tmp_path):
    app_id = unique_name("lock-cli")
    held = StateDirLock(App(app_id, state_dir=tmp_path).config)
    held.acquire()
    try:
        env = {**os.environ, "PYTHONPATH": str(REPO), "TEST_APP_ID": app_id, "TEST_IN": "in", "TEST_OUT": "out",
               "TEST_STATE_DIR": str(tmp_path), "STREAMS_BROKERS": "memory://lock-cli"}
        result = subprocess.run([sys.executable, "-m", "streams", "worker", "tests.apps.pipeline:app"], cwd=REPO,
                                env=env, capture_output=True, text=True, timeout=60)
    finally:
        held.release()
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: state dir {tmp_path.resolve() / app_id} is in use by another worker of {app_id!r} in process "
        f"{os.getpid()}", "hint: give each worker on one machine its own state_dir"]
