"""Stateless pipeline: filter plus map_values on the framework against the same loop on plain aiokafka.

    python -m bench.stateless [--records 1000000] [--rounds 3]

Produces the input once (8 partitions, ~200-byte JSON orders), then runs the
two sides alternately, each in a fresh child process with a fresh consumer
group and output topic, and reports each side's median records/s and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time

from bench.common import (
    ChildResult,
    create_topics,
    delete_topics,
    median,
    produce,
    rates_line,
    run_child,
    unique,
    workload_parser,
)
from bench.workload import kept, orders

SIDES = ("raw-stateless", "streams-stateless")


def parse() -> argparse.Namespace:
    parser = workload_parser(__doc__)
    parser.add_argument("--sides", default=",".join(SIDES), help="comma-separated subset of " + ", ".join(SIDES))
    parser.add_argument("--batch-bytes", type=int, default=0,
                        help="producer max_batch_size, the same on both sides (default: the framework's)")
    parser.add_argument("--raw-batch-bytes", type=int, default=0,
                        help="the raw loop's own producer batch size, e.g. 1048576 (0: as --batch-bytes)")
    parser.add_argument("--raw-fetch-bytes", type=int, default=0,
                        help="the raw loop's max_partition_fetch_bytes, e.g. 4194304 (0: aiokafka's default)")
    parser.add_argument("--streams-settings", default="",
                        help="JSON of App keyword arguments for the framework side, over the benchmark's own")
    parser.add_argument("--variants", default="",
                        help="framework variants run side by side, 'label=JSON;label=JSON' of App settings; each "
                             "adds a side streams-stateless@label (to choose defaults by measurement)")
    parser.add_argument("--keep-topics", action="store_true")
    parser.add_argument("--profile-dir", default="", help="write each child's cProfile here (slows both sides)")
    args = parser.parse_args()
    args.variant_settings = dict(v.split("=", 1) for v in args.variants.split(";") if v)
    args.sides = ",".join([*args.sides.split(","), *(f"streams-stateless@{label}" for label in args.variant_settings)])
    return args


def prepare_input(args: argparse.Namespace, topics: list[str]) -> str:
    topic = unique("orders")
    topics.append(topic)
    asyncio.run(create_topics(args.brokers, {topic: args.partitions}))
    started = time.perf_counter()
    asyncio.run(produce(args.brokers, topic, args.partitions, orders(args.records, args.keys)))
    print(f"input: {args.records:,} records on {topic} in {time.perf_counter() - started:.1f}s", flush=True)
    return topic


def run_side(side: str, args: argparse.Namespace, topic: str, topics: list[str], run: int) -> ChildResult:
    output, group = unique("out"), unique("group")
    topics.extend([output, f"{group}-dlq", f"{group}-counts-changelog"])  # the last for bench.stateful's count
    asyncio.run(create_topics(args.brokers, {output: args.partitions}))
    extra = ["--profile", os.path.join(args.profile_dir, f"{side}-{run}.prof")] if args.profile_dir else []
    child_side, _, label = side.partition("@")
    for option in ("batch_bytes", "raw_batch_bytes", "raw_fetch_bytes", "streams_settings"):
        if getattr(args, option, None) and not (label and option == "streams_settings"):
            extra += ["--" + option.replace("_", "-"), str(getattr(args, option))]
    if label:
        extra += ["--streams-settings", args.variant_settings[label]]
    with tempfile.TemporaryDirectory(prefix="bench-state-") as state_dir:
        result = run_child(child_side, ["--brokers", args.brokers, "--input", topic, "--output", output,
                                        "--group", group, "--records", str(args.records), "--state-dir", state_dir,
                                        *extra])
    print(f"  {side:26} {result.rate:>10,.0f} records/s  ({result.seconds:.2f}s; {result.cpu_rate:,.0f} records "
          f"per CPU second; peak RSS {result.max_rss_bytes / (1 << 20):,.0f} MiB)", flush=True)
    return result


def compare(args: argparse.Namespace, topic: str, topics: list[str]) -> dict[str, list[ChildResult]]:
    """Alternate the sides (A B B A A B ...) so drift on the shared machine hits both alike."""
    sides = tuple(args.sides.split(","))
    results: dict[str, list[ChildResult]] = {side: [] for side in sides}
    for run in range(args.rounds):
        for side in sides if run % 2 == 0 else sides[::-1]:
            results[side].append(run_side(side, args, topic, topics, run))
    return results


def main() -> None:
    args = parse()
    topics: list[str] = []
    try:
        topic = prepare_input(args, topics)
        results = compare(args, topic, topics)
    finally:
        if not args.keep_topics:
            asyncio.run(delete_topics(args.brokers, topics))
    print(f"\nstateless filter + map_values, {args.records:,} records in, {kept(args.records):,} out, "
          f"{args.partitions} partitions, {args.rounds} rounds")
    medians = {side: median(r.rate for r in runs) for side, runs in results.items()}
    for side, runs in results.items():
        cpu = median(r.cpu_rate for r in runs)
        print(f"  {side:26} median {medians[side]:>10,.0f} records/s  ({rates_line(runs)}); "
              f"{cpu:,.0f} records per CPU second; peak RSS {max(r.max_rss_bytes for r in runs) >> 20} MiB")
    if "raw-stateless" in medians and len(medians) > 2:
        raw_cpu = median(r.cpu_rate for r in results["raw-stateless"])
        for side in medians:
            if side != "raw-stateless":
                print(f"  {side:26} / raw: {medians[side] / medians['raw-stateless']:.2f} wall-clock, "
                      f"{median(r.cpu_rate for r in results[side]) / raw_cpu:.2f} per CPU second")
    if len(medians) == 2:
        raw, framework = (medians[side] for side in SIDES)
        raw_cpu, framework_cpu = (median(r.cpu_rate for r in results[side]) for side in SIDES)
        print(f"  ratio streams/raw: {framework / raw:.2f}  (goal >= 0.80)")
        print(f"  records per CPU second, median: raw {raw_cpu:,.0f}, streams {framework_cpu:,.0f} "
              f"(ratio {framework_cpu / raw_cpu:.2f})")


if __name__ == "__main__":
    main()
