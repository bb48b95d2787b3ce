"""Metrics on against metrics off: the stateless pipeline (bench/stateless.py) run both ways, side by side.

    python -m bench.metrics_overhead [--records 300000] [--rounds 5]

"on" is the default recording level with the worker's web server up and its
/metrics scraped every second by another process (bench/scraper.py), as a
Prometheus server would; "off" is recording level "off" and no web server.  The input is
produced once; each run gets a fresh group and output topic and its own child
process, and the sides alternate (A B B A ...).  The ratio is on/off of the
median records per second (and per CPU second).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile

from bench.common import (
    ChildResult,
    create_topics,
    delete_topics,
    median,
    rates_line,
    run_child,
    unique,
    workload_parser,
)
from bench.stateless import prepare_input

SIDES = ("off", "on")


def parse() -> argparse.Namespace:
    parser = workload_parser(__doc__, records=300_000, rounds=5)
    return parser.parse_args()


def run_side(metrics: str, args: argparse.Namespace, topic: str, topics: list[str]) -> ChildResult:
    output, group = unique("out"), unique("group")
    topics.extend([output, f"{group}-dlq"])
    asyncio.run(create_topics(args.brokers, {output: args.partitions}))
    with tempfile.TemporaryDirectory(prefix="bench-state-") as state_dir:
        result = run_child("streams-stateless", ["--brokers", args.brokers, "--input", topic, "--output", output,
                                                 "--group", group, "--records", str(args.records),
                                                 "--state-dir", state_dir, "--metrics", metrics])
    scrapes = f"; {result.report['scrapes']} scrapes" if "scrapes" in result.report else ""
    print(f"  metrics {metrics:3} {result.rate:>10,.0f} records/s  ({result.seconds:.2f}s; {result.cpu_rate:,.0f} "
          f"records per CPU second{scrapes})", flush=True)
    return result


def main() -> None:
    args = parse()
    topics: list[str] = []
    results: dict[str, list[ChildResult]] = {side: [] for side in SIDES}
    try:
        topic = prepare_input(args, topics)
        for run in range(args.rounds):
            for side in SIDES if run % 2 == 0 else SIDES[::-1]:
                results[side].append(run_side(side, args, topic, topics))
    finally:
        asyncio.run(delete_topics(args.brokers, topics))
    print(f"\nstateless filter + map_values, metrics on against off, {args.records:,} records, "
          f"{args.partitions} partitions, {args.rounds} rounds")
    for side, runs in results.items():
        print(f"  metrics {side:3} median {median(r.rate for r in runs):>10,.0f} records/s  ({rates_line(runs)}); "
              f"per CPU second {median(r.cpu_rate for r in runs):,.0f}")
    wall = median(r.rate for r in results["on"]) / median(r.rate for r in results["off"])
    cpu = median(r.cpu_rate for r in results["on"]) / median(r.cpu_rate for r in results["off"])
    print(f"  ratio on/off: {wall:.3f} records/s, {cpu:.3f} records per CPU second (goal >= 0.97)")


if __name__ == "__main__":
    main()
