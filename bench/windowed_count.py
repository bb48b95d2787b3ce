"""Windowed count against plain count, on the framework and the real broker.

    python -m bench.windowed_count [--records 1000000] [--keys 100000] [--rounds 1]

The input is produced once: `--records` JSON records over `--keys` keys
(chosen at random), on 8 partitions keyed as Kafka's client would, with event
time advancing 1 ms every 10 records and 5% of records moved back in time by
up to 20 s.  Two sides then consume it from the start, each in a fresh child
process with a fresh consumer group and RocksDB state:

- windowed: group_by_key().window(Tumbling(1 min, grace=10 s)).count(emit="final"),
  its final results written to an output topic;
- count:    group_by_key().count() (no output topic; state and changelog only).

A side's rate is records / (time of its final commit - time its first record
arrived); peak RSS is the child's, from the kernel.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams import App
from streams.partitioner import KeyPartitioner
from streams.windows import Tumbling

REPO = Path(__file__).resolve().parent.parent
SIDES = ("windowed", "count")
CHILD_TIMEOUT_S = 1800


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--out-of-order", type=float, default=0.05, help="share of records moved back in time")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each side, alternating")
    parser.add_argument("--brokers", default=os.environ.get("STREAMS_BROKERS", "127.0.0.1:9092"))
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)  # set in the child processes
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def unique(prefix: str) -> str:
    return f"bench-{prefix}-{uuid.uuid4().hex[:8]}"


# -- input


def events(records: int, keys: int, out_of_order: float, seed: int = 7) -> Iterator[tuple[bytes, bytes, int]]:
    """(key, value, timestamp): 10 records per ms of event time, ending a minute ago; some moved back up to 20 s."""
    rng = random.Random(seed)
    # Event time ends near now: the broker would soon delete records older than its retention.
    base = time.time_ns() // 1_000_000 // 60_000 * 60_000 - records // 10 - 60_000
    for i in range(records):
        user = rng.randrange(keys)
        ts = base + i // 10
        if rng.random() < out_of_order:
            ts -= rng.randint(1, 20_000)
        value = {"id": i, "user": user, "amount": (i * 7919) % 100_000 / 100, "page": f"/item/{i % 977}"}
        yield f"user-{user:07d}".encode(), orjson.dumps(value), ts


async def records_in(brokers: str, topic: str) -> int:
    """How many records a topic holds (the sum of its partitions' end offsets)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=brokers)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(bootstrap_servers=brokers)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
        return sum((await consumer.end_offsets(partitions)).values())
    finally:
        await consumer.stop()


async def admin_call(brokers: str, action: str, names: dict[str, int] | list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=brokers)
    await admin.start()
    try:
        if action == "create":
            await admin.create_topics([NewTopic(n, p, 1) for n, p in names.items()])
        else:
            existing = set(await admin.list_topics())
            doomed = [n for n in names if n in existing]
            if doomed:
                await admin.delete_topics(doomed)
    finally:
        await admin.close()


async def produce(brokers: str, topic: str, partitions: int, records: Iterator[tuple[bytes, bytes, int]]) -> int:
    """Send in half-megabyte batches per partition; production is set-up, not measurement."""
    producer = AIOKafkaProducer(bootstrap_servers=brokers, acks=1, linger_ms=0, max_batch_size=512 * 1024,
                                max_request_size=2 << 20)
    await producer.start()
    place = KeyPartitioner()
    batches: dict[int, Any] = {}
    deliveries = []
    count = 0
    try:
        for key, value, ts in records:
            partition = place(key, partitions)
            batch = batches.get(partition) or batches.setdefault(partition, producer.create_batch())
            if batch.append(key=key, value=value, timestamp=ts, headers=[]) is None:
                deliveries.append(await producer.send_batch(batch, topic, partition=partition))
                batch = batches[partition] = producer.create_batch()
                batch.append(key=key, value=value, timestamp=ts, headers=[])
            count += 1
        for partition, batch in batches.items():
            deliveries.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*deliveries)
    finally:
        await producer.stop()
    return count


# -- one side, in a child process


async def run_side(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-windows-") as state_dir:
        app = App(unique(f"group-{args.side}"), args.brokers, state_dir=state_dir, commit_interval=1.0,
                  poll_max_records=10_000)
        grouped = app.stream(args.input).group_by_key()
        if args.side == "windowed":
            window = Tumbling(timedelta(minutes=1), grace=timedelta(seconds=10))
            grouped.window(window).count(name="counts", emit="final").to(args.output)
        else:
            grouped.count(name="counts")
        worker = app.create_worker()
        await worker.start()
        first: list[float] = []
        consumed = 0
        done = asyncio.Event()
        poll = worker.consumer.poll

        async def probe(timeout_ms: int, max_records: int | None = None) -> Any:
            nonlocal consumed
            batches = await poll(timeout_ms, max_records)
            if batches:
                if not first:
                    first.append(time.time())
                consumed += sum(len(records) for records in batches.values())
                if consumed >= args.records:
                    done.set()
            return batches

        worker.consumer.poll = probe
        try:
            loop = asyncio.create_task(worker.loop())
            waiting = asyncio.create_task(done.wait())
            await asyncio.wait([loop, waiting], return_when=asyncio.FIRST_COMPLETED)
            worker.stop()
            waiting.cancel()
            await loop
            await worker._commit()  # the final commit: its end is the side's end
            end = time.time()
            windows = sum(1 for task in worker.tasks.values() for key, _ in task.stores["counts"].items()
                          if key[:1] == b"w") if args.side == "windowed" else None
            report = {"first": first[0], "end": end, "records": consumed, "windows_in_store": windows,
                      "late_records": worker.metrics.get("late_records"),
                      "expired_windows": worker.metrics.get("expired_windows"),
                      "group": app.app_id}
        finally:
            await worker.shutdown(commit=False)
    return report


def windows_made(report: dict[str, Any]) -> int:
    """Windows the side created: those still in its store and those retention deleted."""
    return report["windows_in_store"] + (report["expired_windows"] or 0)


def child(side: str, args: argparse.Namespace, topic: str, output: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.windowed_count", "--side", side, "--input", topic, "--output", output,
               "--records", str(args.records), "--brokers", args.brokers]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True)
    watchdog = threading.Timer(CHILD_TIMEOUT_S, process.kill)
    watchdog.start()
    try:
        stdout = process.stdout.read() if process.stdout else ""
    finally:
        watchdog.cancel()
    _pid, status, usage = os.wait4(process.pid, 0)  # reaped here for the child's peak RSS
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"side {side} failed")
    report = json.loads([line for line in stdout.splitlines() if line.startswith("{")][-1])
    report["peak_rss_mib"] = usage.ru_maxrss / 1024
    report["rate"] = report["records"] / (report["end"] - report["first"])
    return report


def main() -> None:
    args = parse()
    if args.side:
        print(json.dumps(asyncio.run(run_side(args))), flush=True)
        return
    topic = unique("events")
    topics = [topic]
    try:
        asyncio.run(admin_call(args.brokers, "create", {topic: args.partitions}))
        started = time.perf_counter()
        produced = asyncio.run(produce(args.brokers, topic, args.partitions,
                                       events(args.records, args.keys, args.out_of_order)))
        print(f"input: {produced:,} records, {args.keys:,} keys, {args.out_of_order:.0%} out of order, "
              f"{args.partitions} partitions, produced in {time.perf_counter() - started:.1f}s", flush=True)
        reports: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
        for round_ in range(args.rounds):
            for side in SIDES if round_ % 2 == 0 else SIDES[::-1]:
                output = unique("windowed-counts") if side == "windowed" else ""
                if output:
                    topics.append(output)
                    asyncio.run(admin_call(args.brokers, "create", {output: args.partitions}))
                report = child(side, args, topic, output)
                results = asyncio.run(records_in(args.brokers, output)) if output else 0
                changelog = f"{report['group']}-counts-changelog"
                logged = asyncio.run(records_in(args.brokers, changelog))
                topics.extend([changelog, f"{report['group']}-dlq"])
                reports[side].append(report)
                print(f"  {side:9} {report['rate']:>9,.0f} records/s  {report['end'] - report['first']:6.1f}s  "
                      f"peak RSS {report['peak_rss_mib']:,.0f} MiB  late {report['late_records']:,}"
                      + f"  changelog {logged:,}"
                      + (f"  windows in store {report['windows_in_store']:,}  results written {results:,}"
                         f"  changelog records per window {logged / windows_made(report):.2f}"
                         if side == "windowed" else ""),
                      flush=True)
    finally:
        asyncio.run(admin_call(args.brokers, "delete", topics))
    rate = {side: statistics.median(r["rate"] for r in reports[side]) for side in SIDES}
    rss = {side: max(r["peak_rss_mib"] for r in reports[side]) for side in SIDES}
    print(f"\n{args.records:,} records, {args.keys:,} keys, {args.rounds} round(s); medians:")
    print(f"  windowed count: {rate['windowed']:>9,.0f} records/s, peak RSS {rss['windowed']:,.0f} MiB")
    print(f"  plain count:    {rate['count']:>9,.0f} records/s, peak RSS {rss['count']:,.0f} MiB")
    print(f"  ratio windowed/plain: {rate['windowed'] / rate['count']:.2f}")


if __name__ == "__main__":
    main()
