"""Exactly-once against at-least-once, on the stateless pipeline and the count, in one run on one broker.

    python -m bench.exactly_once [--records 200000] [--partitions 8,64] [--workloads stateless,count]
                                 [--guarantees at_least_once,exactly_once_v2] [--rounds 3]
                                 [--commit-interval default]

For each partition count the input (~200-byte JSON orders, --keys users) is
produced once.  The workloads are bench.stateless's filter + map_values to an
output topic, and bench.stateful's count by key (a changelogged RocksDB store).
Each guarantee runs each workload in a fresh child process (bench/child.py) with
a fresh consumer group, alternating the guarantees round by round, at each
guarantee's default commit interval (1 s at-least-once, 100 ms exactly-once)
unless --commit-interval gives one for all.  A run's rate is its records over
the time from its first consumed record to the end of the commit that makes
its last result durable, and per second of the child's CPU time over the same
span (far steadier on a shared machine).  Reported: medians per guarantee, the
ratios of each exactly-once setting to at-least-once, commits and their latency.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time

from bench.common import (
    BROKERS,
    ChildResult,
    create_topics,
    delete_topics,
    median,
    produce,
    rates_line,
    run_child,
    unique,
)
from bench.workload import orders

WORKLOADS = {"stateless": "streams-stateless", "count": "streams-count"}
DEFAULT_INTERVAL = {"at_least_once": 1.0, "exactly_once_v2": 0.1, "exactly_once": 0.1}


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--partitions", default="8,64", help="comma-separated partition counts")
    parser.add_argument("--workloads", default="stateless,count", help="comma-separated: stateless, count")
    parser.add_argument("--guarantees", default="at_least_once,exactly_once_v2",
                        help="comma-separated; the first is the baseline of the ratios")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each guarantee, alternating")
    parser.add_argument("--commit-interval", default="default", help="seconds, or 'default' per guarantee")
    parser.add_argument("--brokers", default=BROKERS)
    return parser.parse_args()


def measure(args: argparse.Namespace, workload: str, guarantee: str, topic: str, partitions: int,
            topics: list[str]) -> ChildResult:
    output, group = unique("eos-out"), unique(guarantee.replace("_", "-"))
    topics.extend([output, f"{group}-dlq", f"{group}-counts-changelog"])
    asyncio.run(create_topics(args.brokers, {output: partitions}))
    interval = DEFAULT_INTERVAL[guarantee] if args.commit_interval == "default" else float(args.commit_interval)
    with tempfile.TemporaryDirectory(prefix="bench-eos-") as state_dir:
        result = run_child(WORKLOADS[workload], [
            "--brokers", args.brokers, "--input", topic, "--output", output, "--group", group,
            "--records", str(args.records), "--state-dir", state_dir, "--guarantee", guarantee,
            "--commit-interval", str(interval)])
    report = result.report
    print(f"    {guarantee:16} {result.rate:>10,.0f} records/s, {result.cpu_rate:>10,.0f} per CPU second  "
          f"({result.seconds:.2f}s, {report['commits']} commits, p50 {report['commit_p50_ms']:.1f} ms, "
          f"p99 {report['commit_p99_ms']:.1f} ms)", flush=True)
    return result


def main() -> None:
    args = parse()
    guarantees = args.guarantees.split(",")
    summary = []
    topics: list[str] = []
    try:
        for partitions in (int(p) for p in args.partitions.split(",")):
            topic = unique("eos-orders")
            topics.append(topic)
            asyncio.run(create_topics(args.brokers, {topic: partitions}))
            started = time.perf_counter()
            asyncio.run(produce(args.brokers, topic, partitions, orders(args.records, args.keys)))
            print(f"input: {args.records:,} orders on {partitions} partitions "
                  f"({time.perf_counter() - started:.1f}s)", flush=True)
            for workload in args.workloads.split(","):
                print(f"  {workload}", flush=True)
                runs: dict[str, list[ChildResult]] = {g: [] for g in guarantees}
                for index in range(args.rounds):
                    for guarantee in guarantees if index % 2 == 0 else guarantees[::-1]:
                        runs[guarantee].append(measure(args, workload, guarantee, topic, partitions, topics))
                summary.append((partitions, workload, runs))
    finally:
        asyncio.run(delete_topics(args.brokers, topics))
    interval = "each guarantee's default" if args.commit_interval == "default" else f"{args.commit_interval} s"
    print(f"\n{args.records:,} records, {args.rounds} rounds, commit interval: {interval}")
    base = guarantees[0]
    for partitions, workload, runs in summary:
        medians = {g: median(r.rate for r in results) for g, results in runs.items()}
        cpu = {g: median(r.cpu_rate for r in results) for g, results in runs.items()}
        for guarantee, results in runs.items():
            ratio = "" if guarantee == base else (f"; ratio to {base} {medians[guarantee] / medians[base]:.2f}, "
                                                  f"per CPU second {cpu[guarantee] / cpu[base]:.2f}")
            p50 = median(r.report["commit_p50_ms"] for r in results)
            print(f"  {partitions:>3} partitions {workload:9} {guarantee:16} median {medians[guarantee]:>9,.0f} "
                  f"records/s ({rates_line(results)}), {cpu[guarantee]:,.0f} per CPU second{ratio}; "
                  f"commit p50 {p50:.1f} ms")


if __name__ == "__main__":
    main()
