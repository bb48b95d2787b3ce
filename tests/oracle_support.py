"""Differential tests with Kafka Streams as the oracle: the reference program, inputs, runs and comparison.

tests/oracle/ is a Maven module whose one class runs reference topologies on Kafka Streams
(the version the broker uses).  A test generates inputs from a seed, writes the same records
to two sets of input topics, runs Kafka Streams over one and a streams App over the other on
the real broker, replays them through the TestDriver as well, and compares the output
multisets per topology.

Inputs are built so that both engines must process them in the same order: every record goes
to the partition its key hashes to, and in a task that reads two topics their timestamps never
tie (one topic's are even, the other's odd), so ordering by timestamp across partitions, which
both engines do, has a single answer.

STREAMS_ORACLE_SEEDS picks the seeds: a number N runs seeds 1..N, a comma-separated list runs
those.  The default is three seeds (README.md, "Set-up").
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams import App
from streams.partitioner import partition_for
from streams.testing import TestDriver
from streams.windows import WindowedJsonSerde
from tests.conftest import create_topics

REPO = Path(__file__).resolve().parent.parent
ORACLE_MODULE = REPO / "tests" / "oracle"
DEFAULT_SEEDS = (1, 2, 3)
KEYS = tuple(f"k{i:02d}" for i in range(20))
WINDOWED = WindowedJsonSerde("str")  # the default key serde of windowed results
CLOSE_KEY = "~close"
FAST_GROUP = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 500}
# Event times near now: the broker deletes records older than its retention (7 days) at once.
BASE = time.time_ns() // 1_000_000 // 600_000 * 600_000 - 1_200_000


def seeds() -> list[int]:
    """The seeds to run: STREAMS_ORACLE_SEEDS=N for 1..N, or a comma-separated list."""
    raw = os.environ.get("STREAMS_ORACLE_SEEDS", "").strip()
    if not raw:
        return list(DEFAULT_SEEDS)
    if "," in raw:
        return [int(s) for s in raw.split(",") if s.strip()]
    return list(range(1, int(raw) + 1))


def build_oracle() -> str:
    """Build tests/oracle with Maven and return its classpath; a failed build fails the session."""
    try:
        built = subprocess.run(["mvn", "-q", "-B", "-Dstyle.color=never", "package"], cwd=ORACLE_MODULE,
                               capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.fail(f"building the Kafka Streams oracle failed: {exc}", pytrace=False)
    if built.returncode != 0:
        pytest.fail(f"building the Kafka Streams oracle failed:\n{built.stdout[-4000:]}\n{built.stderr[-4000:]}",
                    pytrace=False)
    target = ORACLE_MODULE / "target"
    return f"{target / 'classes'}:{target / 'lib'}/*"


# -- inputs


@dataclass
class Topic:
    """One input topic's records, each (key, value, timestamp, partition), in production order."""

    name: str
    partitions: int
    records: list[tuple[str, str | None, int, int]] = field(default_factory=list)

    def add(self, key: str, value: str | None, timestamp: int, partition: int | None = None) -> None:
        if partition is None:
            partition = partition_for(key.encode(), self.partitions)
        self.records.append((key, value, timestamp, partition))

    def in_partition(self, partition: int) -> list[tuple[str, str | None, int, int]]:
        return [r for r in self.records if r[3] == partition]


def event_times(rng: random.Random, count: int, step: int = 1) -> list[int]:
    """Offsets (ms from BASE) advancing 0-300 ms per record; about 10% moved back by up to 15 s.

    step 2 keeps every offset even, so a caller can make one topic's times even and another's odd.
    """
    times, now = [], 0
    for _ in range(count):
        now += rng.randint(0, 300 // step) * step
        t = now
        if rng.random() < 0.10:
            t = max(0, t - rng.randint(1, 15_000 // step) * step)
        times.append(t)
    return times


def close_everything(topic: Topic, timestamp: int) -> None:
    """One record far in the future on every partition, so that every window closes."""
    for partition in range(topic.partitions):
        topic.add(CLOSE_KEY, "close", timestamp, partition)


def time_order(topics: Sequence[Topic], partition: int) -> list[tuple[Topic, tuple]]:
    """The order a task reading these topics' partition processes their records in: each topic's
    own order, across topics the smallest timestamp at the heads first (timestamps never tie)."""
    queues = [(topic, topic.in_partition(partition)) for topic in topics]
    heads = [0] * len(queues)
    order = []
    while True:
        ready = [i for i, (_, records) in enumerate(queues) if heads[i] < len(records)]
        if not ready:
            return order
        i = min(ready, key=lambda j: queues[j][1][heads[j]][2])
        order.append((queues[i][0], queues[i][1][heads[i]]))
        heads[i] += 1


# -- topologies


@dataclass
class Topology:
    """One reference topology: how Kafka Streams and streams run it, and how its results read."""

    name: str
    oracle_kind: str
    inputs: tuple[str, ...]
    params: dict[str, int]
    build: Callable[[Sources, str], None]
    windowed: bool

    def oracle_spec(self, topics: dict[str, str], output: str) -> str:
        params = ",".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.oracle_kind}:{','.join(topics[i] for i in self.inputs)}:{output}:{params}"


def joiner(left: Any, right: Any) -> str:
    return f"{'null' if left is None else left}|{'null' if right is None else right}"


# -- running both sides


class Differential:
    """One seed's run: topics for both sides, Kafka Streams and streams on the broker, and the TestDriver."""

    def __init__(self, brokers: str, classpath: str, tmp_path: Path, topics: Sequence[Topic],
                 topologies: Sequence[Topology], time_groups: Sequence[Sequence[str]]) -> None:
        self.brokers = brokers
        self.classpath = classpath
        self.tmp_path = tmp_path
        self.topics = {t.name: t for t in topics}
        self.topologies = topologies
        self.time_groups = time_groups  # the input names each task reads together, in timestamp order
        run = uuid.uuid4().hex[:8]
        self.names = {side: {t.name: f"oracle-{run}-{side}-{t.name}" for t in topics} for side in ("ks", "py")}
        self.outputs = {side: {t.name: f"oracle-{run}-{side}-out-{t.name}" for t in topologies}
                        for side in ("ks", "py")}
        self.app_ids = {side: f"oracle-{run}-{side}" for side in ("ks", "py")}
        self.seconds: dict[str, float] = {}  # wall-clock time of each phase, for the report
        self.oracle_log = ""

    def app(self, app_id: str) -> App:
        # The inputs are on the broker before the worker starts, so a partition runs dry only at its
        # end; a longer idle wait than the default only guards against a slow first fetch.
        app = App(app_id, brokers=self.brokers, state_dir=self.tmp_path / app_id, commit_interval=0.2,
                  consumer_config=FAST_GROUP, max_task_idle=2.0)
        sources = Sources(app, self.names["py"])
        for topology in self.topologies:
            topology.build(sources, self.outputs["py"][topology.name])
        return app

    async def run(self) -> dict[str, dict[str, Counter]]:
        """Results of every topology from Kafka Streams ("ks"), streams ("py") and the TestDriver ("driver")."""
        started = time.monotonic()
        await self._create_and_produce()
        self.seconds["inputs"] = time.monotonic() - started
        oracle = asyncio.create_task(self._timed("kafka streams", self._run_oracle()))
        try:
            await self._timed("streams", self._run_streams())
        finally:
            await oracle
        started = time.monotonic()
        results = {"ks": {}, "py": {}, "driver": self._run_driver()}
        self.seconds["driver"] = time.monotonic() - started
        for side in ("ks", "py"):
            for topology in self.topologies:
                records = await read_to_end(self.brokers, self.outputs[side][topology.name])
                results[side][topology.name] = Counter(_normalize(topology, r, side) for r in records)
        return results

    async def _timed(self, what: str, work: Any) -> None:
        started = time.monotonic()
        try:
            await work
        finally:
            self.seconds[what] = time.monotonic() - started

    async def _create_and_produce(self) -> None:
        topics = {name: t.partitions for side in ("ks", "py") for key, name in self.names[side].items()
                  for t in [self.topics[key]]}
        topics.update({name: 1 for side in ("ks", "py") for name in self.outputs[side].values()})
        await create_topics(self.brokers, topics)
        producer = AIOKafkaProducer(bootstrap_servers=self.brokers, linger_ms=5, acks="all")
        await producer.start()
        try:
            sent = []
            for side in ("ks", "py"):
                for key, topic in self.topics.items():
                    for k, v, ts, partition in topic.records:
                        sent.append(await producer.send(self.names[side][key], None if v is None else v.encode(),
                                                        key=k.encode(), partition=partition, timestamp_ms=ts))
            await asyncio.gather(*sent)
        finally:
            await producer.stop()

    async def _run_oracle(self) -> None:
        specs = [t.oracle_spec(self.names["ks"], self.outputs["ks"][t.name]) for t in self.topologies]
        # A short run: the client compiler alone and the serial collector take a third of the CPU time.
        process = await asyncio.create_subprocess_exec(
            "java", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-cp", self.classpath,
            "dev.streams.oracle.Oracle", "--bootstrap", self.brokers, "--app-id", self.app_ids["ks"],
            "--state-dir", str(self.tmp_path / "kafka-streams"), *specs,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            output, _ = await asyncio.wait_for(process.communicate(), 180)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise AssertionError("the Kafka Streams oracle did not finish within 180 s") from None
        assert process.returncode == 0, f"Kafka Streams oracle exited {process.returncode}:\n{output.decode()[-6000:]}"
        self.oracle_log = output.decode()[-2000:]

    async def _run_streams(self) -> None:
        """Run a worker until it has processed every input record; leaving app.running() stops it, which commits."""
        app = self.app(self.app_ids["py"])
        total = sum(len(topic.records) for topic in self.topics.values())
        async with app.running() as run, asyncio.timeout(180):
            while run.metrics.get("records_processed", 0) < total:
                await asyncio.sleep(0.1)

    def _run_driver(self) -> dict[str, Counter]:
        app = self.app(self.app_ids["py"] + "-driver")
        counts = {self.names["py"][key]: topic.partitions for key, topic in self.topics.items()}
        with TestDriver(app, partitions=counts) as driver:
            for group in self.time_groups:
                group_topics = [self.topics[name] for name in group]
                for partition in range(group_topics[0].partitions):
                    for topic, (key, value, ts, p) in time_order(group_topics, partition):
                        driver.pipe_input(self.names["py"][topic.name], key, value, ts, partition=p)
            results = {}
            for topology in self.topologies:
                records = driver.read_output(self.outputs["py"][topology.name],
                                             key_serde=WINDOWED if topology.windowed else "str")
                results[topology.name] = Counter(_normalize_driver(topology, r) for r in records)
        return results


class Sources:
    """The streams app's input streams and tables by input name, each made once (a topic has one source)."""

    def __init__(self, app: App, names: dict[str, str]) -> None:
        self.app, self.names = app, names
        self.made: dict[str, Any] = {}

    def stream(self, name: str) -> Any:
        if name not in self.made:
            self.made[name] = self.app.stream(self.names[name], value_serde="str")
        return self.made[name]

    def table(self, name: str) -> Any:
        if name not in self.made:
            self.made[name] = self.app.table(self.names[name], value_serde="str")
        return self.made[name]


def _normalize(topology: Topology, record: Any, side: str) -> tuple:
    """A result as (key, [start, end,] value, timestamp), times relative to BASE."""
    ts = record.timestamp - BASE
    if side == "ks":
        body = orjson.loads(record.value)
        if topology.windowed:
            return body["key"], body["start"] - BASE, body["end"] - BASE, body["value"], ts
        return body["key"], body["value"], ts
    value = None if record.value is None else orjson.loads(record.value)
    if topology.windowed:
        key = WINDOWED.deserialize(record.key)
        return key.key, key.start - BASE, key.end - BASE, value, ts
    return record.key.decode(), value, ts


def _normalize_driver(topology: Topology, record: Any) -> tuple:
    ts = record.timestamp - BASE
    if topology.windowed:
        return record.key.key, record.key.start - BASE, record.key.end - BASE, record.value, ts
    return record.key, record.value, ts


async def read_to_end(brokers: str, topic: str) -> list:
    """Every record of a topic's partitions, from the start to the end offsets at the time of the call."""
    consumer = AIOKafkaConsumer(bootstrap_servers=brokers, enable_auto_commit=False, auto_offset_reset="earliest",
                                isolation_level="read_committed")
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, 0)]  # outputs have one partition
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        for tp in partitions:
            consumer.seek(tp, 0)  # outputs are new topics that nothing truncates
        records = []
        async with asyncio.timeout(60):
            while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
                for batch in (await consumer.getmany(timeout_ms=200)).values():
                    records.extend(batch)
        return records
    finally:
        await consumer.stop()


# -- comparing


def difference_report(results: dict[str, dict[str, Counter]], names: Iterable[str]) -> tuple[list[str], bool]:
    """One line per topology and side, and whether every side equals Kafka Streams everywhere."""
    lines, same = [], True
    for name in names:
        expected = results["ks"][name]
        for side in ("py", "driver"):
            got = results[side][name]
            if got == expected:
                lines.append(f"{name:20} {side:6} identical: {sum(got.values())} records")
                continue
            same = False
            missing, extra = expected - got, got - expected
            lines.append(f"{name:20} {side:6} Kafka Streams {sum(expected.values())}, streams {sum(got.values())}, "
                         f"equal {sum((expected & got).values())}, missing {sum(missing.values())} "
                         f"{_first(missing)}, extra {sum(extra.values())} {_first(extra)}")
    return lines, same


def _first(records: Counter, count: int = 4) -> list:
    return sorted(records.elements(), key=repr)[:count]
