"""What every benchmark needs: topics, fast input production, child processes and medians.

Each measured side runs in its own child process, so that one side's garbage,
caches and event loop never slow the other down, and so that its peak RSS is
its own (the child reports VmHWM from /proc/self/status as it ends).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.partitioner import KeyPartitioner

REPO = Path(__file__).resolve().parent.parent
BROKERS = os.environ.get("STREAMS_BROKERS", "127.0.0.1:9092")
INPUT_BATCH_BYTES = 512 * 1024


def workload_parser(doc: str | None, records: int = 1_000_000, rounds: int = 3) -> argparse.ArgumentParser:
    """The options every side-by-side benchmark shares: the input's size and shape, the rounds, the broker."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=records)
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=rounds, help="runs of each side, alternating")
    parser.add_argument("--brokers", default=BROKERS)
    return parser


def unique(prefix: str) -> str:
    return f"bench-{prefix}-{uuid.uuid4().hex[:8]}"


async def create_topics(brokers: str, partitions: Mapping[str, int], config: Mapping[str, str] | None = None) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=brokers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, n, 1, topic_configs=dict(config or {}))
                                   for name, n in partitions.items()])
    finally:
        await admin.close()


async def delete_topics(brokers: str, names: Iterable[str]) -> None:
    """Drop the benchmark's topics, so repeated runs do not fill the shared broker's disk."""
    names = list(names)
    if not names:
        return
    admin = AIOKafkaAdminClient(bootstrap_servers=brokers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        doomed = [n for n in names if n in existing]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


async def topics_with_prefix(brokers: str, prefix: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=brokers)
    await admin.start()
    try:
        return sorted(t for t in await admin.list_topics() if t.startswith(prefix))
    finally:
        await admin.close()


async def produce(brokers: str, topic: str, partitions: int, records: Iterable[tuple[bytes, bytes]]) -> int:
    """Write (key, value) pairs in large batches, each key on the partition Kafka's own client would pick.

    Input production is set-up, not measurement, so it builds batches of half a
    megabyte and sends each as soon as it is full.  Timestamps are the current
    time: older ones would let the broker's retention delete the input under us.
    """
    timestamp_ms = int(time.time() * 1000)
    producer = AIOKafkaProducer(bootstrap_servers=brokers, acks=1, linger_ms=0, max_batch_size=INPUT_BATCH_BYTES,
                                max_request_size=4 * INPUT_BATCH_BYTES)
    await producer.start()
    place = KeyPartitioner(cache_size=1 << 30)
    open_batches: dict[int, Any] = {}
    deliveries = []
    count = 0
    try:
        for key, value in records:
            partition = place(key, partitions)
            batch = open_batches.get(partition)
            if batch is None:
                batch = open_batches[partition] = producer.create_batch()
            if batch.append(key=key, value=value, timestamp=timestamp_ms + count, headers=[]) is None:
                deliveries.append(await producer.send_batch(batch, topic, partition=partition))
                batch = open_batches[partition] = producer.create_batch()
                batch.append(key=key, value=value, timestamp=timestamp_ms + count, headers=[])
            count += 1
        for partition, batch in open_batches.items():
            deliveries.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*deliveries)
    finally:
        await producer.stop()
    return count


@dataclass
class ChildResult:
    """What one measured child reported, plus its peak RSS from the kernel."""

    side: str
    report: dict[str, Any]
    max_rss_bytes: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return self.report["end"] - self.report["first"]

    @property
    def rate(self) -> float:
        return self.report["records"] / self.seconds

    @property
    def cpu_rate(self) -> float:
        """Records per second of this process's CPU time over the same span: steadier than
        wall-clock rates on a shared machine, and blind to time spent waiting for the broker."""
        return self.report["records"] / self.report["cpu"]


def run_child(side: str, args: Sequence[str], timeout_s: float = 1800) -> ChildResult:
    """Run `python -m bench.child <side> ...`; its last stdout line starting with { is its JSON report."""
    command = [sys.executable, "-m", "bench.child", side, *args]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True)
    watchdog = threading.Timer(timeout_s, process.kill)
    watchdog.start()
    try:
        assert process.stdout is not None
        stdout = process.stdout.read()
    finally:
        watchdog.cancel()
    process.wait()
    if process.returncode != 0:
        raise RuntimeError(f"benchmark child {side} failed with exit code {process.returncode}")
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"benchmark child {side} printed no report")
    report = json.loads(lines[-1])
    # The child's own VmHWM: getrusage's ru_maxrss for a child also counts the pages
    # it shared with this (much larger) process between fork and exec.
    return ChildResult(side, report, report["vm_hwm_kib"] * 1024)


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def rates_line(results: Sequence[ChildResult]) -> str:
    return ", ".join(f"{r.rate:,.0f}" for r in results)


def mib(n: float) -> str:
    return f"{n / (1 << 20):,.0f} MiB"
