"""The command line as users run it, in subprocesses: send, tail and topics on local:// and Kafka,
a worker on memory://, and each user mistake as one `error:` line with a hint and exit status 2."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import uuid

import orjson
import pytest

from streams.transport.embedded import EmbeddedTransport, close_broker
from tests.process_helpers import REPO

APP = """
from streams import App

app = App("cli-{run}", brokers="memory://cli")
clicks = app.topic("clicks-{run}", partitions=2)
counts = app.topic("counts-{run}", partitions=2)
app.stream(clicks).group_by(lambda key, click: click["user"]).count(name="per-user").to_stream().to(counts)


@app.task
async def seed():
    await clicks.send("c0", {{"user": "ada"}})


@app.agent(counts)
async def show(stream):
    async for user, n in stream.items():
        print(f"{{user}} has {{n}}", flush=True)
"""


@pytest.fixture
def cli_app(tmp_path) -> tuple[str, str]:
    """A module with an app whose topics are declared; returns (module:app, run id)."""
    run = uuid.uuid4().hex[:8]
    (tmp_path / f"cliapp_{run}.py").write_text(APP.format(run=run))
    return f"cliapp_{run}:app", run


def streams(tmp_path, *args: str, brokers: str | None = None, stdin: str | None = None,
            env: dict | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "STREAMS_BROKERS"}
    environ.update({"PYTHONPATH": str(REPO), **(env or {})})
    if brokers:
        environ["STREAMS_BROKERS"] = brokers
    return subprocess.run([sys.executable, "-m", "streams", *args], cwd=tmp_path, env=environ, input=stdin,
                          capture_output=True, text=True, timeout=60)


def assert_user_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 2 and lines[0].startswith("error: ") and lines[1].startswith("hint: "), result.stderr
    for fragment in fragments:
        assert fragment in result.stderr


def json_lines(text: str) -> list[dict]:
    return [orjson.loads(line) for line in text.splitlines()]


@pytest.mark.parametrize("kind", ["local", "kafka"])
def test_send_then_tail_with_the_apps_serdes(kind, request, tmp_path, cli_app):
    spec, run = cli_app
    brokers = f"local://{tmp_path / 'broker'}" if kind == "local" else request.getfixturevalue("brokers")
    clicks = f"clicks-{run}"
    one = streams(tmp_path, "send", spec, clicks, "--key", "ada", "--value", '{"user": "ada"}', brokers=brokers)
    assert one.returncode == 0 and "sent 1 record" in one.stderr, one.stderr
    lines = streams(tmp_path, "send", spec, clicks, "--separator", ":", brokers=brokers,
                    stdin='bo:{"user": "bo"}\n\ncy:{"user": "cy"}\n')
    assert lines.returncode == 0 and "sent 2 records" in lines.stderr, lines.stderr
    everything = streams(tmp_path, "tail", spec, clicks, "--from-beginning", brokers=brokers)
    assert everything.returncode == 0, everything.stderr
    records = json_lines(everything.stdout)
    assert sorted((r["key"], r["value"]["user"]) for r in records) == [("ada", "ada"), ("bo", "bo"), ("cy", "cy")]
    last = streams(tmp_path, "tail", spec, clicks, "-n", "1", brokers=brokers)
    assert [r["key"] for r in json_lines(last.stdout)] == ["cy"]


def test_tail_follows_new_records(brokers, tmp_path, cli_app):
    spec, run = cli_app
    clicks = f"clicks-{run}"
    assert streams(tmp_path, "send", spec, clicks, "--key", "a", "--value", "1", brokers=brokers).returncode == 0
    env = {**os.environ, "PYTHONPATH": str(REPO), "STREAMS_BROKERS": brokers}
    tail = subprocess.Popen([sys.executable, "-m", "streams", "tail", spec, clicks, "--follow"], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert orjson.loads(tail.stdout.readline())["key"] == "a"
        assert streams(tmp_path, "send", spec, clicks, "--key", "b", "--value", "2", brokers=brokers).returncode == 0
        assert orjson.loads(tail.stdout.readline())["key"] == "b"
    finally:
        tail.send_signal(signal.SIGINT)
        assert tail.wait(30) == 0, tail.stderr.read()


def test_topics_lists_what_the_app_reads_writes_and_creates(tmp_path, cli_app):
    spec, run = cli_app
    brokers = f"local://{tmp_path / 'broker'}"
    streams(tmp_path, "send", spec, f"clicks-{run}", "--value", '{"user": "ada"}', brokers=brokers)
    listed = streams(tmp_path, "topics", spec, brokers=brokers)
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line.split() for line in listed.stdout.splitlines()[1:]}
    assert rows[f"clicks-{run}"][-1] == "2", "created by the send, as declared"
    assert rows[f"counts-{run}"][-1] == "missing"
    assert rows[f"cli-{run}-per-user-repartition"][-2:] == ["2", "missing"]
    assert rows[f"cli-{run}-per-user-changelog"][-2:] == ["2", "missing"]
    assert f"cli-{run}-dlq" in rows


def test_a_worker_runs_on_memory_when_the_app_declares_its_topics(tmp_path, cli_app):
    spec, _ = cli_app
    env = {**{k: v for k, v in os.environ.items() if k != "STREAMS_BROKERS"}, "PYTHONPATH": str(REPO)}
    worker = subprocess.Popen([sys.executable, "-m", "streams", "worker", spec], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert worker.stdout.readline().strip() == "ada has 1", "the start-up task's record went through"
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0, worker.stderr.read()


def test_undeclared_missing_topics_stop_the_worker_with_the_lines_that_declare_them(tmp_path):
    (tmp_path / "undeclared.py").write_text(textwrap.dedent("""
        from streams import App
        app = App("undeclared", brokers="memory://")
        app.stream("clicks").to("clicks-out")
    """))
    result = streams(tmp_path, "worker", "undeclared:app")
    assert_user_error(result, "'clicks' (read), 'clicks-out' (written)",
                      'app.topic("clicks", partitions=1); app.topic("clicks-out", partitions=1)')


def test_user_mistakes_are_one_error_line_and_a_hint(tmp_path, cli_app):
    spec, run = cli_app
    local = f"local://{tmp_path / 'broker'}"
    assert_user_error(streams(tmp_path, "send", spec, "no-such-topic", "--value", "1", brokers=local),
                      "cannot send to 'no-such-topic'", 'app.topic("no-such-topic", partitions=1)')
    assert_user_error(streams(tmp_path, "tail", spec, "no-such-topic", brokers=local), "cannot read 'no-such-topic'")
    assert_user_error(streams(tmp_path, "send", spec, f"clicks-{run}", "--value", "{oops", brokers=local),
                      "is not JSON")
    assert_user_error(streams(tmp_path, "topics", "no_such_module:app"), "cannot import 'no_such_module'")
    assert_user_error(streams(tmp_path, "topics", f"{spec.split(':')[0]}:nothing"), "has no attribute 'nothing'")
    assert_user_error(streams(tmp_path, "topics", spec, brokers="127.0.0.1:1"),
                      "cannot reach the Kafka brokers at 127.0.0.1:1")
    assert_user_error(streams(tmp_path, "worker", spec, env={"STREAMS_COMMIT_INTERVAL": "soon"}),
                      "commit_interval: STREAMS_COMMIT_INTERVAL='soon' is not a number of seconds")
    shown = streams(tmp_path, "--traceback", "topics", "no_such_module:app")
    assert shown.returncode != 0 and "Traceback" in shown.stderr and "ModuleNotFoundError" in shown.stderr


def test_a_local_directory_held_by_another_process_is_a_user_error(tmp_path, cli_app):
    spec, run = cli_app
    url = f"local://{tmp_path / 'broker'}"
    assert EmbeddedTransport(url).broker is not None  # this process holds the directory now
    try:
        assert_user_error(streams(tmp_path, "tail", spec, f"clicks-{run}", brokers=url),
                          "is open in another process")
    finally:
        close_broker(url)
    assert streams(tmp_path, "topics", spec, brokers=url).returncode == 0, "released, it opens again"
