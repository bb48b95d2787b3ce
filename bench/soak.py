"""Memory soak: a count by key with an output topic, fed at a steady rate, its RSS sampled over time.

    python -m bench.soak [--minutes 10] [--rate 5000] [--keys 100000]

The worker runs in a child process (`group_by_key().count()`, updates to an
output topic, RocksDB state, at-least-once, the framework's defaults).  This
process produces `--rate` records per second over `--keys` keys for
`--minutes`, and samples the child's resident set (VmRSS) every
`--sample` seconds.  Once every key has been seen the state stops growing, so
a leak shows as RSS that keeps rising after the warm-up: the report compares
the RSS at the end with the RSS when the warm-up ends (`--warmup` minutes), and
gives the peak.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.common import BROKERS, REPO, create_topics, delete_topics, mib, unique
from bench.workload import order


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0, help="minutes before the baseline sample")
    parser.add_argument("--rate", type=int, default=5_000, help="records per second")
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between RSS samples")
    parser.add_argument("--brokers", default=BROKERS)
    parser.add_argument("--child", nargs=3, metavar=("INPUT", "OUTPUT", "STATE_DIR"), help=argparse.SUPPRESS)
    return parser.parse_args()


def child(brokers: str, source: str, output: str, state_dir: str) -> None:
    """The measured worker: runs until SIGTERM."""
    from streams import App

    app = App(unique("soak"), brokers=brokers, state_dir=state_dir)
    app.stream(source).group_by_key().count(name="counts").to_stream().to(output)
    app.run()


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def outputs(brokers: str, topic: str, partitions: int) -> int:
    """Records in the output topic: with the record cache off, one update per input processed."""
    consumer = AIOKafkaConsumer(bootstrap_servers=brokers)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
        return sum(ends.values())
    finally:
        await consumer.stop()


async def caught_up(args: argparse.Namespace, output: str, sent: int, timeout_s: float = 60) -> int:
    """Wait until the worker has written an update per input; the count it reached."""
    deadline = time.monotonic() + timeout_s
    while (written := await outputs(args.brokers, output, args.partitions)) < sent and time.monotonic() < deadline:
        await asyncio.sleep(1)
    return written


async def feed(args: argparse.Namespace, topic: str, worker: subprocess.Popen) -> tuple[list[tuple[float, int]], int]:
    """Produce at the steady rate for the whole run; sample the worker's RSS as it goes."""
    producer = AIOKafkaProducer(bootstrap_servers=args.brokers, linger_ms=20)
    await producer.start()
    samples: list[tuple[float, int]] = []
    started = time.monotonic()
    end = started + args.minutes * 60
    next_sample = started
    sent = 0
    tick = 0.1
    try:
        while (now := time.monotonic()) < end:
            if worker.poll() is not None:
                raise SystemExit(f"the worker exited with {worker.returncode}")
            due = int((now - started) * args.rate)
            while sent < due:
                record = order(sent, args.keys)
                await producer.send(topic, key=record["user"].encode(), value=orjson.dumps(record))
                sent += 1
            if now >= next_sample:
                samples.append((now - started, rss_kib(worker.pid)))
                next_sample += args.sample
            await asyncio.sleep(tick)
        await producer.flush()
    finally:
        await producer.stop()
    return samples, sent


def report(args: argparse.Namespace, samples: list[tuple[float, int]], sent: int, written: int) -> None:
    for at, kib in samples:
        print(f"  {at / 60:5.1f} min  RSS {mib(kib * 1024)}")
    baseline = next(kib for at, kib in samples if at >= args.warmup * 60)
    final, peak = samples[-1][1], max(kib for _, kib in samples)
    growth = (final - baseline) / baseline
    print(f"rate {args.rate:,}/s over {args.keys:,} keys for {args.minutes:g} min: RSS at {args.warmup:g} min "
          f"{mib(baseline * 1024)}, at the end {mib(final * 1024)} ({growth:+.1%}), peak {mib(peak * 1024)}; "
          f"{written:,} updates written for {sent:,} inputs")


def main() -> None:
    args = parse()
    if args.child:
        child(args.brokers, *args.child)
        return
    source, output = unique("soak-in"), unique("soak-out")
    asyncio.run(create_topics(args.brokers, {source: args.partitions, output: args.partitions}))
    with tempfile.TemporaryDirectory() as state_dir:
        worker = subprocess.Popen([sys.executable, "-m", "bench.soak", "--brokers", args.brokers,
                                   "--child", source, output, state_dir], cwd=REPO,
                                  env={**os.environ, "PYTHONPATH": str(REPO)})
        try:
            samples, sent = asyncio.run(feed(args, source, worker))
            written = asyncio.run(caught_up(args, output, sent))
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=60)
    asyncio.run(delete_topics(args.brokers, [source, output]))
    report(args, samples, sent, written)


if __name__ == "__main__":
    main()
