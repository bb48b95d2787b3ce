"""Running tests/faults/app.py under faults: topics, inputs, workers, and outputs collected as they appear.

Inputs are numbered: input i has key "e<i>", value {"user": "u<i mod 500>", "id": i},
partition i mod PARTITIONS and event time base + i ms.  The echo topic stamps
records with the broker's append time, so the tests can tell when a partition's
output resumed after a fault.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from tests.conftest import create_topics, unique_name
from tests.faults.checker import Reference, Verdict, check
from tests.process_helpers import REPO, WorkerProcess

log = logging.getLogger(__name__)

PARTITIONS = 8
APP = "tests.faults.app:app"
EXACTLY_ONCE = os.environ.get("STREAMS_FAULTS_EXACTLY_ONCE", "exactly_once_v2")
"""The exactly-once setting under test; STREAMS_FAULTS_EXACTLY_ONCE=exactly_once runs the per-task one."""


@dataclass
class Topics:
    """The topics of one run of the fault app; several apps (say, one per guarantee) may share the inputs."""

    app_id: str
    inputs: str
    echo: str
    totals: str
    windows: str | None

    @classmethod
    def fresh(cls, inputs: str, windows: bool = False) -> Topics:
        return cls(unique_name("faults"), inputs, unique_name("echo"), unique_name("totals"),
                   unique_name("windows") if windows else None)

    @property
    def changelog(self) -> str:
        return f"{self.app_id}-totals-changelog"

    async def create(self, brokers: str) -> None:
        """The output topics; the echo topic stamps records with the broker's append time."""
        await create_topics(brokers, {self.totals: PARTITIONS})
        await create_topics(brokers, {self.echo: PARTITIONS}, {"message.timestamp.type": "LogAppendTime"})
        if self.windows:
            await create_topics(brokers, {self.windows: PARTITIONS})

    def env(self, guarantee: str, standbys: int = 0) -> dict[str, str]:
        env = {"FAULTS_APP_ID": self.app_id, "FAULTS_IN": self.inputs, "FAULTS_ECHO": self.echo,
               "FAULTS_TOTALS": self.totals, "FAULTS_GUARANTEE": guarantee, "FAULTS_STANDBYS": str(standbys)}
        if self.windows:
            env["FAULTS_WINDOWS"] = self.windows
        return env


async def create_inputs(brokers: str) -> str:
    name = unique_name("in")
    await create_topics(brokers, {name: PARTITIONS})
    return name


class AppRun:
    """One app under test: its topics, its worker processes and the collector of its outputs."""

    def __init__(self, brokers: str, inputs: str, folder: Path, guarantee: str, *, windows: bool = False,
                 standbys: int = 0, env: dict[str, str] | None = None, state_root: Path | None = None) -> None:
        self.brokers = brokers
        self.guarantee = guarantee
        self.topics = Topics.fresh(inputs, windows)
        folder.mkdir(parents=True, exist_ok=True)
        self.workers = Workers(brokers, self.topics, folder, guarantee, standbys, env, state_root)
        self.collector = Collector(brokers, self.topics)

    async def start(self, workers: int) -> AppRun:
        await self.topics.create(self.brokers)
        for slot in range(workers):
            self.workers.start(slot)
        self.collector.start()
        return self

    async def wait_output(self, timeout: float = 120) -> None:
        """Until every input partition has echo output: all workers joined and processing."""
        deadline = time.monotonic() + timeout
        while len(self.collector.outputs.echo_times) < PARTITIONS:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no output from every partition within {timeout}s\n{self.workers.logs()}")
            await asyncio.sleep(0.5)

    async def finish(self, reference: Reference, timeout: float = 240) -> Verdict:
        """Wait until every input reached the outputs, then check them and the final table."""
        caught_up = await self.collector.wait_caught_up(reference, timeout)
        verdict = await verdict_of(self.brokers, self.topics, self.collector, reference)
        assert caught_up, f"{self.guarantee}: outputs incomplete after {timeout}s: {verdict}\n{self.workers.logs()}"
        return verdict

    async def close(self) -> None:
        await self.collector.stop()
        self.workers.kill_all()


class Workers:
    """Worker processes of the fault app, each with its own state folder and log."""

    def __init__(self, brokers: str, topics: Topics, folder: Path, guarantee: str, standbys: int = 0,
                 env: dict[str, str] | None = None, state_root: Path | None = None) -> None:
        self.brokers = brokers
        self.env = {**topics.env(guarantee, standbys), **(env or {})}
        self.folder = folder
        self.state_root = state_root or folder
        self.processes: dict[int, WorkerProcess] = {}
        self.exits: list[tuple[int, int]] = []  # (slot, return code) of every worker that ended
        self.kills: list[tuple[float, int]] = []  # (wall-clock time, pid) of every kill -9

    def start(self, slot: int) -> WorkerProcess:
        worker = WorkerProcess(self.brokers, self.worker_env(slot), self.folder / f"w{slot}.log", app=APP)
        self.processes[slot] = worker.start()
        return worker

    def worker_env(self, slot: int) -> dict[str, str]:
        return {**self.env, "FAULTS_STATE_DIR": str(self.state_root / f"w{slot}")}

    def command(self, slot: int, *args: str) -> subprocess.CompletedProcess:
        """Run `python -m streams <args> tests.faults.app:app` as worker `slot` would be configured."""
        env = {**os.environ, "STREAMS_BROKERS": self.brokers, "PYTHONPATH": str(REPO), **self.worker_env(slot)}
        return subprocess.run([sys.executable, "-m", "streams", *args, APP], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=300)

    async def wait_exit(self, slot: int, timeout: float) -> int | None:
        """The worker's exit code once it ends on its own, or None if it still runs after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while self.processes[slot].alive():
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(0.5)
        return self.processes[slot].proc.returncode

    def kill(self, slot: int) -> None:
        worker = self.processes[slot]
        self.kills.append((time.time(), worker.pid))
        worker.signal(signal.SIGKILL)
        self.exits.append((slot, worker.wait(30)))

    def terminate(self, slot: int, timeout: float = 60) -> int:
        code = self.processes[slot].terminate(timeout)
        self.exits.append((slot, code))
        return code

    def alive(self) -> list[int]:
        return [slot for slot, worker in self.processes.items() if worker.alive()]

    def stop_all(self) -> list[int]:
        """SIGTERM every live worker; return their exit codes (0 is a clean leave)."""
        live = self.alive()
        for slot in live:
            self.processes[slot].signal(signal.SIGTERM)
        codes = []
        for slot in live:
            try:
                codes.append(self.processes[slot].wait(60))
            except Exception:
                self.processes[slot].kill()
                codes.append(-9)
        return codes

    def kill_all(self) -> None:
        for worker in self.processes.values():
            worker.kill()

    def logs(self, tail: int = 1500) -> str:
        return "\n".join(f"--- w{slot}\n{worker.log()[-tail:]}" for slot, worker in sorted(self.processes.items()))

    def log_paths(self) -> list[Path]:
        return sorted(self.folder.glob("w*.log"))


class Feeder:
    """Produces inputs 0..total-1 at a steady rate in the background, riding out broker faults.

    A chunk that fails is sent again once the broker answers; if its first
    attempt was written after all, the input topic holds it twice, and the
    reference (read back from the topic) counts it twice too.
    """

    def __init__(self, brokers: str, topic: str, total: int, rate_per_s: int, base_ms: int | None = None) -> None:
        self.brokers = brokers
        self.topic = topic
        self.total = total
        self.rate = rate_per_s
        self.base_ms = base_ms if base_ms is not None else int(time.time() * 1000) - total
        self.sent = 0
        self.resends = 0
        self.stopping = False
        self.task: asyncio.Task | None = None

    def start(self) -> Feeder:
        self.task = asyncio.create_task(self._run())
        return self

    async def wait(self, timeout: float = 600) -> None:
        await asyncio.wait_for(asyncio.shield(self.task), timeout)

    async def finish(self) -> None:
        """Stop after the chunk in flight: the input topic then holds what was sent."""
        self.stopping = True
        await self.wait()

    async def _producer(self) -> AIOKafkaProducer:
        while True:
            producer = AIOKafkaProducer(bootstrap_servers=self.brokers, linger_ms=20, enable_idempotence=True,
                                        request_timeout_ms=120_000, max_batch_size=256 * 1024)
            try:
                await producer.start()
                return producer
            except KafkaError:
                await producer.stop()
                await asyncio.sleep(1)

    async def _run(self) -> None:
        producer = await self._producer()
        chunk = max(1, self.rate // 10)
        try:
            for start in range(0, self.total, chunk):
                if self.stopping:
                    break
                began = time.monotonic()
                stop = min(self.total, start + chunk)
                while True:
                    try:
                        futures = [await producer.send(self.topic, orjson.dumps({"user": f"u{i % 500}", "id": i}),
                                                       key=f"e{i}".encode(), partition=i % PARTITIONS,
                                                       timestamp_ms=self.base_ms + i)
                                   for i in range(start, stop)]
                        await asyncio.gather(*futures)
                        break
                    except KafkaError as exc:
                        log.warning("input chunk %d..%d failed (%s); sending it again", start, stop, exc)
                        self.resends += 1
                        await producer.stop()
                        producer = await self._producer()
                self.sent = stop
                await asyncio.sleep(max(0.0, 0.1 - (time.monotonic() - began)))
        finally:
            await producer.stop()


@dataclass
class Outputs:
    """Everything the app has committed to its output topics so far, read continuously."""

    echo: Counter[int] = field(default_factory=Counter)
    echo_times: dict[int, list[tuple[int, int]]] = field(default_factory=dict)  # input partition -> (ms, pid)
    totals: dict[str, list[dict]] = field(default_factory=dict)
    windows: dict[str, dict] = field(default_factory=dict)
    last_record: float = field(default_factory=time.monotonic)


class Collector:
    """Reads the echo, totals and windows topics from the start with read_committed, in the background."""

    def __init__(self, brokers: str, topics: Topics) -> None:
        self.brokers = brokers
        self.topics = topics
        self.outputs = Outputs()
        self.task: asyncio.Task | None = None

    def start(self) -> Collector:
        self.task = asyncio.create_task(self._run())
        return self

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        names = [t for t in (self.topics.echo, self.topics.totals, self.topics.windows) if t]
        consumer = AIOKafkaConsumer(bootstrap_servers=self.brokers, isolation_level="read_committed",
                                    auto_offset_reset="earliest", enable_auto_commit=False,
                                    request_timeout_ms=120_000)
        await consumer.start()
        try:
            consumer.assign([TopicPartition(t, p) for t in names for p in range(PARTITIONS)])
            out = self.outputs
            while True:
                try:
                    batches = await consumer.getmany(timeout_ms=500, max_records=20_000)
                except KafkaError as exc:
                    log.warning("collector: %s", exc)
                    await asyncio.sleep(0.5)
                    continue
                for tp, records in batches.items():
                    if records:
                        out.last_record = time.monotonic()
                    if tp.topic == self.topics.echo:
                        for r in records:
                            value = orjson.loads(r.value)
                            out.echo[value["id"]] += 1
                            out.echo_times.setdefault(value["id"] % PARTITIONS, []).append(
                                (r.timestamp, value["pid"]))
                    elif tp.topic == self.topics.totals:
                        for r in records:
                            out.totals.setdefault(r.key.decode(), []).append(orjson.loads(r.value))
                    else:
                        for r in records:
                            out.windows[r.key.decode()] = orjson.loads(r.value)
        finally:
            await consumer.stop()

    def caught_up(self, reference: Reference) -> bool:
        """Every input reached every output at least once (duplicates may still be among them)."""
        out = self.outputs
        if any(out.echo.get(i, 0) < n for i, n in reference.ids.items()):
            return False
        for user, expected in reference.totals.items():
            updates = out.totals.get(user)
            if not updates or updates[-1]["count"] < expected["count"]:
                return False
        if self.topics.windows:
            for key, expected in reference.windows.items():
                got = out.windows.get(key)
                if got is None or got["count"] < expected["count"]:
                    return False
        return True

    async def wait_caught_up(self, reference: Reference, timeout: float, quiet: float = 3.0) -> bool:
        """Wait until caught up and then quiet for `quiet` seconds (late duplicates arrive in that time)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.caught_up(reference) and time.monotonic() - self.outputs.last_record >= quiet:
                return True
            await asyncio.sleep(0.5)
        return False


async def read_to_end(brokers: str, topic: str, isolation_level: str = "read_committed") -> list:
    """Every record of a topic (of PARTITIONS partitions), up to the end offsets read at the start."""
    consumer = AIOKafkaConsumer(bootstrap_servers=brokers, isolation_level=isolation_level,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list = []
        while True:
            behind = [tp for tp in partitions if await consumer.position(tp) < ends[tp]]
            if not behind:
                return records
            for batch in (await consumer.getmany(*behind, timeout_ms=500, max_records=50_000)).values():
                records.extend(batch)
    finally:
        await consumer.stop()


async def reference_from_inputs(brokers: str, topic: str) -> Reference:
    records = await read_to_end(brokers, topic, "read_uncommitted")
    return Reference.of([(orjson.loads(r.value)["id"], r.timestamp) for r in records])


async def final_table(brokers: str, changelog: str) -> dict[str, dict]:
    return {r.key.decode(): orjson.loads(r.value) if r.value is not None else None
            for r in await read_to_end(brokers, changelog)}


async def verdict_of(brokers: str, topics: Topics, collector: Collector, reference: Reference) -> Verdict:
    table = await final_table(brokers, topics.changelog)
    out = collector.outputs
    return check(reference, out.echo, out.totals, table, out.windows if topics.windows else None)


def resumed_after(collector: Collector, moment_s: float, exclude_pid: int | None = None) -> dict[int, float | None]:
    """Per input partition: seconds from `moment_s` to its first echo output appended after it
    (by another worker than `exclude_pid`), or None if none came."""
    moment_ms = moment_s * 1000
    result: dict[int, float | None] = {}
    for partition in range(PARTITIONS):
        after = [ms for ms, pid in collector.outputs.echo_times.get(partition, ())
                 if ms > moment_ms and pid != exclude_pid]
        result[partition] = (min(after) - moment_ms) / 1000 if after else None
    return result


async def wait_all_resumed(app: AppRun, moment_s: float, timeout: float) -> float:
    """Seconds from `moment_s` until every input partition had output again; fails after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        resumed = resumed_after(app.collector, moment_s)
        if all(v is not None for v in resumed.values()):
            return max(resumed.values())
        await asyncio.sleep(0.5)
    raise AssertionError(f"{app.guarantee}: output did not resume within {timeout}s: "
                         f"{resumed_after(app.collector, moment_s)}\n{app.workers.logs()}")


async def wait_tasks_started(app: AppRun, slot: int, after_s: float, timeout: float) -> None:
    """Until worker `slot` logs that it started tasks after `after_s`: it rejoined the group and runs."""
    path = app.workers.folder / f"w{slot}.log"
    deadline = time.monotonic() + timeout
    while True:
        for line in path.read_text(errors="replace").splitlines():
            match = _STARTED.match(line)
            if match and _log_time(match.group(1)) >= after_s:
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"worker w{slot} started no tasks within {timeout}s\n{app.workers.logs()}")
        await asyncio.sleep(0.5)


def owned_at(collector: Collector, moment_s: float, pid: int) -> list[int]:
    """Input partitions whose last echo output before `moment_s` came from worker `pid`."""
    moment_ms = moment_s * 1000
    owned = []
    for partition, times in collector.outputs.echo_times.items():
        before = [(ms, p) for ms, p in times if ms <= moment_ms]
        if before and max(before)[1] == pid:
            owned.append(partition)
    return sorted(owned)


_RESTORED = re.compile(r"^(\S+ \S+) INFO streams\.runtime\.restore: restored (\S+)\[(\d+)\]: (\d+) records")


def restores(log_paths: list[Path], after_s: float = 0.0) -> list[int]:
    """Records restored per store restore (a task taking over a store), from the workers' logs."""
    counts = []
    for path in log_paths:
        for line in path.read_text(errors="replace").splitlines():
            match = _RESTORED.match(line)
            if match and _log_time(match.group(1)) >= after_s:
                counts.append(int(match.group(4)))
    return counts


_STARTED = re.compile(r"^(\S+ \S+) INFO streams\.runtime\.worker: started tasks (.*)$")


def takeovers(log_paths: list[Path], after_s: float = 0.0, subtopology: int = 1) -> list[int]:
    """Records restored per task that moved: started by a worker that did not run it just before.

    Every rebalance closes and restarts all tasks, so most restores are a worker
    reopening its own stores; a takeover is a task new to the worker that starts it.
    """
    counts = []
    for path in log_paths:
        previous: set[str] = set()
        pending: list[tuple[str, int]] = []
        for line in path.read_text(errors="replace").splitlines():
            if match := _RESTORED.match(line):
                if _log_time(match.group(1)) >= after_s:
                    pending.append((f"{subtopology}_{match.group(3)}", int(match.group(4))))
            elif match := _STARTED.match(line):
                started = set(match.group(2).split(", "))
                counts.extend(n for task, n in pending if task not in previous)
                previous, pending = started, []
    return counts


def _log_time(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def summary(values: list[float]) -> dict:
    """Count, median, 95th percentile and maximum, rounded for the report."""
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    return {"n": len(ordered), "median": round(ordered[len(ordered) // 2], 2),
            "p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 2),
            "max": round(ordered[-1], 2)}


def report(case: str, figures: dict) -> None:
    """Print the figures, and append them to $STREAMS_FAULTS_REPORT (JSON lines) for docs/reliability.md."""
    line = json.dumps({"case": case, **figures}, sort_keys=True)
    print(f"\nFAULTS {line}")
    path = os.environ.get("STREAMS_FAULTS_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")
