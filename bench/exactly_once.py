"""The stateful pipeline under at-least-once and exactly-once, on the same broker in one run.

    python -m bench.exactly_once [--records 300000] [--rounds 2] [--commit-interval default]

The pipeline groups ~200-byte JSON orders by country (a repartition topic) and
keeps count and amount per country in a changelogged RocksDB store.  Each side
runs in a fresh child process with a fresh consumer group, at its guarantee's
default commit interval (1 s at-least-once, 100 ms exactly-once) unless one is
given.  A side's time runs from its first consumed record to the commit that
makes its last result durable.  It reports records/s, the ratio of exactly-once
to at-least-once, and the commit latency (median and 99th percentile).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time

from bench.common import BROKERS, REPO, create_topics, delete_topics, median, produce, unique
from bench.workload import orders
from streams import App

GUARANTEES = ("at_least_once", "exactly_once")


def pipeline(app: App, topic: str) -> None:
    app.stream(topic).group_by(lambda key, order: order["country"], name="by-country").aggregate(
        lambda: {"count": 0, "amount": 0.0},
        lambda country, order, agg: {"count": agg["count"] + 1, "amount": agg["amount"] + order["amount"]},
        name="per-country",
    )


async def run_side(args: argparse.Namespace) -> dict:
    """One measured side, inside the child process."""
    interval = None if args.commit_interval == "default" else float(args.commit_interval)
    app = App(args.group, args.brokers, processing_guarantee=args.child, state_dir=args.state_dir,
              commit_interval=interval)
    pipeline(app, args.input)
    worker = app.create_worker()
    await worker.start()
    first: list[float] = []
    poll = worker.consumer.poll

    async def timed_poll(timeout_ms: int, max_records: int | None = None):
        batches = await poll(timeout_ms, max_records)
        if batches and not first:
            first.append(time.time())
        return batches

    worker.consumer.poll = timed_poll
    loop = asyncio.create_task(worker.loop())
    try:
        # every input passes two sub-topologies: the source's and the repartition topic's
        while worker.metrics.get("records_processed") < 2 * args.records:
            if loop.done():
                loop.result()
            await asyncio.sleep(0.05)
        worker.stop()
        await loop
        async with worker._lock:
            await worker._commit()
        end = time.time()
        stats = worker.commit_stats
        return {"first": first[0], "end": end, "records": args.records, "commits": stats.commits,
                "commit_p50_ms": stats.percentile(0.5), "commit_p99_ms": stats.percentile(0.99)}
    finally:
        await worker.shutdown(commit=False)


def child_main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-eos-") as state_dir:
        args.state_dir = state_dir
        print(json.dumps(asyncio.run(run_side(args))), flush=True)


def measure(guarantee: str, args: argparse.Namespace, topic: str, topics: list[str]) -> dict:
    group = unique(guarantee.replace("_", "-"))
    topics.extend([f"{group}-by-country-repartition", f"{group}-per-country-changelog", f"{group}-dlq"])
    command = [sys.executable, "-m", "bench.exactly_once", "--child", guarantee, "--brokers", args.brokers,
               "--input", topic, "--group", group, "--records", str(args.records),
               "--commit-interval", args.commit_interval]
    output = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=1800)
    if output.returncode != 0:
        raise RuntimeError(f"{guarantee} side failed:\n{output.stderr[-3000:]}")
    report = json.loads([line for line in output.stdout.splitlines() if line.startswith("{")][-1])
    report["rate"] = report["records"] / (report["end"] - report["first"])
    print(f"  {guarantee:14} {report['rate']:>10,.0f} records/s  commits {report['commits']:>5}  "
          f"commit latency p50 {report['commit_p50_ms']:.1f} ms, p99 {report['commit_p99_ms']:.1f} ms", flush=True)
    return report


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=300_000)
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2, help="runs of each side, alternating")
    parser.add_argument("--commit-interval", default="default", help="seconds, or 'default' per guarantee")
    parser.add_argument("--brokers", default=BROKERS)
    parser.add_argument("--child", choices=GUARANTEES, help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--group", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main() -> None:
    args = parse()
    if args.child:
        child_main(args)
        return
    topic = unique("eos-orders")
    topics = [topic]
    try:
        asyncio.run(create_topics(args.brokers, {topic: args.partitions}))
        asyncio.run(produce(args.brokers, topic, args.partitions, orders(args.records, args.keys)))
        print(f"input: {args.records:,} orders on {args.partitions} partitions", flush=True)
        reports: dict[str, list[dict]] = {g: [] for g in GUARANTEES}
        for run in range(args.rounds):
            for guarantee in GUARANTEES if run % 2 == 0 else GUARANTEES[::-1]:
                reports[guarantee].append(measure(guarantee, args, topic, topics))
        alos = median(r["rate"] for r in reports["at_least_once"])
        eos = median(r["rate"] for r in reports["exactly_once"])
        print(f"median: at_least_once {alos:,.0f} records/s, exactly_once {eos:,.0f} records/s, "
              f"ratio {eos / alos:.2f}; exactly_once commit latency p50 "
              f"{median(r['commit_p50_ms'] for r in reports['exactly_once']):.1f} ms")
    finally:
        asyncio.run(delete_topics(args.brokers, topics))


if __name__ == "__main__":
    main()
