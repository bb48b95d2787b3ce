"""`streams lag` against a group with a known backlog, on Kafka and on local://; `--log-format json` and
`--web-port` of `streams worker`."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import signal
import subprocess
import sys
import time

import orjson
import pytest

from streams.runtime import logcontext
from streams.transport import OutRecord, TopicPartition, TopicSpec
from streams.transport.embedded import EmbeddedTransport, close_broker
from streams.transport.kafka import KafkaTransport
from tests.conftest import REPO, create_topics, unique_name
from tests.kafka_helpers import produce
from tests.web_helpers import free_port, get

# committed offsets of the group per partition, of 10 records each: lag 6, 10 (never committed), 0
COMMITTED = {0: 4, 2: 10}
EXPECTED = [(0, 4, 6), (1, None, 10), (2, 10, 0)]


def streams_command(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streams", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(REPO), **env})


def check_lag(env: dict[str, str], topic: str) -> None:
    done = streams_command("lag", "tests.apps.pipeline:app", "--json", env=env)
    assert done.returncode == 0, done.stderr
    report = orjson.loads(done.stdout)
    assert report["group"] == env["TEST_APP_ID"] and report["total"] == 16
    assert [(p["topic"], p["partition"], p["committed"], p["end"], p["lag"]) for p in report["partitions"]] == [
        (topic, partition, committed, 10, lag) for partition, committed, lag in EXPECTED]
    done = streams_command("lag", "tests.apps.pipeline:app", env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["TOPIC", "PARTITION", "COMMITTED", "END", "LAG"]
    assert lines[2].split() == [topic, "1", "-", "10", "10"]
    assert lines[-1] == f"group {env['TEST_APP_ID']}: total lag 16"
    watching = subprocess.Popen([sys.executable, "-m", "streams", "lag", "tests.apps.pipeline:app", "--watch",
                                 "--interval", "0.2", "--json"], cwd=REPO, stdout=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONPATH": str(REPO), **env})
    try:
        rounds = [orjson.loads(watching.stdout.readline()) for _ in range(2)]
    finally:
        watching.send_signal(signal.SIGINT)
        assert watching.wait(30) == 0
    assert [r["total"] for r in rounds] == [16, 16] and rounds[0]["time"] <= rounds[1]["time"]


async def test_lag_on_kafka(brokers):
    topic, app_id = unique_name("backlog"), unique_name("lag")
    await create_topics(brokers, {topic: 3})
    for partition in range(3):
        await produce(brokers, topic, [(f"k{i}", {"i": i}) for i in range(10)], partition=partition)
    admin = KafkaTransport(brokers).admin()
    await admin.start()
    await admin.set_committed_offsets(app_id, {TopicPartition(topic, p): o for p, o in COMMITTED.items()})
    await admin.stop()
    env = {"STREAMS_BROKERS": brokers, "TEST_APP_ID": app_id, "TEST_IN": topic, "TEST_OUT": "unused"}
    await asyncio.to_thread(check_lag, env, topic)


async def test_lag_on_local_broker(tmp_path):
    url = f"local://{tmp_path / 'broker'}"
    transport = EmbeddedTransport(url)
    admin = transport.admin()
    await admin.start()
    await admin.create_topics([TopicSpec("backlog", 3)])
    producer = transport.producer()
    await producer.start()
    await producer.send_many([OutRecord("backlog", p, b"k%d" % i, b"{}", None, ())
                              for p in range(3) for i in range(10)])
    await producer.flush()
    await producer.stop()
    await admin.set_committed_offsets("lag-local", {TopicPartition("backlog", p): o for p, o in COMMITTED.items()})
    await admin.stop()
    close_broker(url)  # a local:// broker serves one process at a time: the command's, now
    env = {"STREAMS_BROKERS": url, "TEST_APP_ID": "lag-local", "TEST_IN": "backlog", "TEST_OUT": "unused"}
    await asyncio.to_thread(check_lag, env, "backlog")


def test_lag_refuses_a_bad_interval():
    done = streams_command("lag", "tests.apps.pipeline:app", "--watch", "--interval", "0",
                           env={"TEST_APP_ID": "x", "TEST_IN": "a", "TEST_OUT": "b", "STREAMS_BROKERS": "memory://x"})
    assert done.returncode == 2 and done.stderr.startswith("error: --interval must be a positive number")
    assert "hint: e.g. --interval 2" in done.stderr and "Traceback" not in done.stderr


def test_log_formats_plain_and_json():
    stream = io.StringIO()
    logcontext.configure_logging("INFO", "plain", stream)
    logging.getLogger("streams.test").info("hello %s", "plain")
    assert stream.getvalue().rstrip().endswith("INFO streams.test: hello plain")
    stream = io.StringIO()
    logcontext.configure_logging("INFO", "json", stream)
    token = logcontext.TASK.set("1_3")
    try:
        logging.getLogger("streams.test").warning("in a task")
    finally:
        logcontext.TASK.reset(token)
    entry = orjson.loads(stream.getvalue())
    assert entry["message"] == "in a task" and entry["level"] == "WARNING" and entry["task"] == "1_3"
    assert set(entry) == {"time", "level", "logger", "message", "app_id", "worker", "task"}
    with pytest.raises(ValueError, match="log_format: 'xml'"):
        logcontext.configure_logging("INFO", "xml", stream)
    logging.getLogger().handlers.clear()


async def test_worker_logs_json_lines_with_app_worker_and_task(tmp_path):
    url = f"local://{tmp_path / 'broker'}"
    transport = EmbeddedTransport(url)
    admin = transport.admin()
    await admin.start()
    await admin.create_topics([TopicSpec("in", 1), TopicSpec("out", 1)])
    producer = transport.producer()
    await producer.start()
    await producer.send_many([OutRecord("in", 0, b"bad", b"not json", None, ()),
                              OutRecord("in", 0, b"good", b'{"a": 1}', None, ())])
    await producer.flush()
    await producer.stop()
    await admin.stop()
    close_broker(url)
    env = {**os.environ, "PYTHONPATH": str(REPO), "STREAMS_BROKERS": url, "TEST_APP_ID": "logs",
           "TEST_IN": "in", "TEST_OUT": "out", "TEST_STATE_DIR": str(tmp_path / "state")}
    log_path = tmp_path / "worker.log"
    port = free_port()
    env["STREAMS_WEB_PORT"] = str(free_port())  # the command line's --web-port wins over the environment
    with open(log_path, "wb") as log:
        worker = subprocess.Popen([sys.executable, "-m", "streams", "--log-format", "json", "worker",
                                   "tests.apps.pipeline:app", "--web-port", str(port)],
                                  cwd=REPO, env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while "failed on in[0]@0" not in log_path.read_text():
            assert worker.poll() is None and time.monotonic() < deadline, log_path.read_text()[-3000:]
            await asyncio.sleep(0.2)
        status, body, _ = await get(f"http://127.0.0.1:{port}/healthz")
        assert status == 200 and body["app_id"] == "logs"
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0, log_path.read_text()[-3000:]
    entries = [orjson.loads(line) for line in log_path.read_text().splitlines()]
    assert all(e["app_id"] == "logs" for e in entries if e["logger"].startswith("streams"))
    started = next(e for e in entries if e["message"].startswith("worker of logs started"))
    assert started["worker"].endswith(f"-{worker.pid}-1") and started["task"] is None
    failure = next(e for e in entries if "failed on in[0]@0" in e["message"])
    assert failure["level"] == "WARNING" and failure["task"] == "0_0" and failure["worker"] == started["worker"]
