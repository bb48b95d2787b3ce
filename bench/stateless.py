"""Stateless pipeline: filter plus map_values on the framework against the same loop on plain aiokafka.

    python -m bench.stateless [--records 1000000] [--rounds 3]

Produces the input once (8 partitions, ~200-byte JSON orders), then runs the
two sides alternately, each in a fresh child process with a fresh consumer
group and output topic, and reports each side's median records/s and the ratio.
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
from bench.workload import kept, orders

SIDES = ("raw-stateless", "streams-stateless")


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="runs of each side, alternating")
    parser.add_argument("--brokers", default=BROKERS)
    parser.add_argument("--keep-topics", action="store_true")
    return parser.parse_args()


def prepare_input(brokers: str, records: int, keys: int, partitions: int) -> str:
    topic = unique("orders")
    asyncio.run(create_topics(brokers, {topic: partitions}))
    started = time.perf_counter()
    asyncio.run(produce(brokers, topic, partitions, orders(records, keys)))
    print(f"input: {records:,} records on {topic} in {time.perf_counter() - started:.1f}s")
    return topic


def run_side(side: str, brokers: str, topic: str, records: int, partitions: int,
             topics: list[str]) -> ChildResult:
    output = unique("out")
    topics.append(output)
    asyncio.run(create_topics(brokers, {output: partitions}))
    group = unique("group")
    topics.append(f"{group}-dlq")
    with tempfile.TemporaryDirectory(prefix="bench-state-") as state_dir:
        result = run_child(side, ["--brokers", brokers, "--input", topic, "--output", output, "--group", group,
                                  "--records", str(records), "--state-dir", state_dir])
    print(f"  {side:18} {result.rate:>10,.0f} records/s  ({result.seconds:.2f}s, peak RSS "
          f"{result.max_rss_bytes / (1 << 20):,.0f} MiB)", flush=True)
    return result


def compare(brokers: str, topic: str, records: int, partitions: int, rounds: int,
            topics: list[str]) -> dict[str, list[ChildResult]]:
    """Alternate the sides (A B B A A B ...) so drift on the shared machine hits both alike."""
    results: dict[str, list[ChildResult]] = {side: [] for side in SIDES}
    for round_ in range(rounds):
        for side in SIDES if round_ % 2 == 0 else SIDES[::-1]:
            results[side].append(run_side(side, brokers, topic, records, partitions, topics))
    return results


def main() -> None:
    args = parse()
    topics: list[str] = []
    try:
        topic = prepare_input(args.brokers, args.records, args.keys, args.partitions)
        topics.append(topic)
        results = compare(args.brokers, topic, args.records, args.partitions, args.rounds, topics)
    finally:
        if not args.keep_topics:
            asyncio.run(delete_topics(args.brokers, topics))
    raw, framework = (median(r.rate for r in results[side]) for side in SIDES)
    print(f"\nstateless filter + map_values, {args.records:,} records, {kept(args.records):,} written, "
          f"{args.partitions} partitions, {args.rounds} rounds")
    print(f"  raw aiokafka loop: median {raw:,.0f} records/s  ({rates_line(results['raw-stateless'])})")
    print(f"  streams:           median {framework:,.0f} records/s  ({rates_line(results['streams-stateless'])})")
    print(f"  ratio streams/raw: {framework / raw:.2f}  (goal >= 0.80)")


if __name__ == "__main__":
    main()
