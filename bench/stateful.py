"""Stateful count and restore, each against its stateless or raw counterpart in the same run.

    python -m bench.stateful [--records 1000000] [--keys 100000] [--rounds 3]

(a) count by key: `stream.group_by_key().count()` over the orders (100k keys),
    against the stateless filter + map_values pipeline over the same input;
    both run from the first record consumed to the end of the commit after the
    last one (for count that commit flushes the changelog and writes RocksDB).
(c) peak RSS of the count worker's process, from the kernel's accounting.
(b) restore: a count over `--records` distinct keys leaves a changelog of that
    many keys; restoring every partition's store from it into an empty state
    directory (as a worker does, all partitions at once; and, for comparison,
    one store after the other) is timed against a plain aiokafka read of the
    same topic (read_committed, getmany to the end).
(d) count with its updates written to an output topic, through a 10 MiB record cache
    and without it (cache_max_bytes=0), in the same rounds as (a).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile

from bench.common import BROKERS, ChildResult, delete_topics, median, mib, rates_line, run_child, unique
from bench.stateless import prepare_input, run_side

COUNT_SIDES = ("streams-stateless", "streams-count", "streams-count-out-cached", "streams-count-out-uncached")
RESTORE_SIDES = ("raw-read", "streams-restore", "streams-restore-serial")


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=100_000, help="distinct keys of the count input")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="runs of each side, alternating")
    parser.add_argument("--skip", default="", help="comma-separated parts to leave out: count, restore")
    parser.add_argument("--brokers", default=BROKERS)
    parser.add_argument("--keep-topics", action="store_true")
    parser.add_argument("--profile-dir", default="", help="write each child's cProfile here (slows every side)")
    args = parser.parse_args()
    args.sides = ",".join(COUNT_SIDES)
    return args


def alternate(sides: tuple[str, ...], rounds: int, run) -> dict[str, list[ChildResult]]:
    """Run the sides A B, B A, A B ... so drift on the shared machine hits both alike."""
    results: dict[str, list[ChildResult]] = {side: [] for side in sides}
    for index in range(rounds):
        for side in sides if index % 2 == 0 else sides[::-1]:
            results[side].append(run(side, index))
    return results


def count_part(args: argparse.Namespace, topics: list[str]) -> dict[str, list[ChildResult]]:
    print(f"(a) count by key over {args.keys:,} keys, against the stateless pipeline", flush=True)
    topic = prepare_input(args, topics)
    return alternate(COUNT_SIDES, args.rounds, lambda side, index: run_side(side, args, topic, topics, index))


def build_changelog(args: argparse.Namespace, topics: list[str]) -> str:
    """Count an input with one record per key, so the changelog holds `records` distinct keys."""
    distinct = argparse.Namespace(**{**vars(args), "keys": args.records})
    topic = prepare_input(distinct, topics)
    group = unique("restore-source")
    topics.extend([f"{group}-dlq", f"{group}-counts-changelog"])
    with tempfile.TemporaryDirectory(prefix="bench-state-") as state_dir:
        run_child("streams-count", ["--brokers", args.brokers, "--input", topic, "--group", group,
                                    "--records", str(args.records), "--state-dir", state_dir])
    return f"{group}-counts-changelog"


def restore_part(args: argparse.Namespace, topics: list[str]) -> dict[str, list[ChildResult]]:
    print(f"(b) restore of a {args.records:,}-key count store, against a raw read of its changelog", flush=True)
    changelog = build_changelog(args, topics)

    def run(side: str, index: int) -> ChildResult:
        extra = ["--profile", f"{args.profile_dir}/{side}-{index}.prof"] if args.profile_dir else []
        with tempfile.TemporaryDirectory(prefix="bench-restore-") as state_dir:
            result = run_child(side, ["--brokers", args.brokers, "--input", changelog, "--records", str(args.records),
                                      "--partitions", str(args.partitions), "--state-dir", state_dir, *extra])
        print(f"  {side:18} {result.rate:>10,.0f} records/s  ({result.report['records']:,} records in "
              f"{result.seconds:.2f}s; {result.cpu_rate:,.0f} records per CPU second; "
              f"peak RSS {mib(result.max_rss_bytes)})", flush=True)
        return result

    return alternate(RESTORE_SIDES, args.rounds, run)


def report(args: argparse.Namespace, counts: dict[str, list[ChildResult]] | None,
           restores: dict[str, list[ChildResult]] | None) -> None:
    print(f"\n{args.records:,} records, {args.partitions} partitions, {args.rounds} rounds")
    if counts:
        stateless, count, cached, uncached = (median(r.rate for r in counts[side]) for side in COUNT_SIDES)
        rss = max(r.max_rss_bytes for r in counts["streams-count"])
        print(f"  (a) count:     median {count:>10,.0f} records/s  ({rates_line(counts['streams-count'])})")
        print(f"      stateless: median {stateless:>10,.0f} records/s  ({rates_line(counts['streams-stateless'])})")
        print(f"      ratio count/stateless: {count / stateless:.2f}")
        cpu = {side: median(r.cpu_rate for r in counts[side]) for side in COUNT_SIDES}
        print(f"      records per CPU second, median: count {cpu['streams-count']:,.0f}, "
              f"stateless {cpu['streams-stateless']:,.0f}")
        print(f"  (d) count to an output topic, record cache on: median {cached:>10,.0f} records/s, off: "
              f"{uncached:,.0f}; ratio on/off {cached / uncached:.2f}; per CPU second on "
              f"{cpu['streams-count-out-cached']:,.0f}, off {cpu['streams-count-out-uncached']:,.0f}")
        print(f"  (c) count worker peak RSS: {mib(rss)} (max over rounds; "
              f"{', '.join(mib(r.max_rss_bytes) for r in counts['streams-count'])})")
    if restores:
        raw, restore, serial = (median(r.rate for r in restores[side]) for side in RESTORE_SIDES)
        print(f"  (b) restore:   median {restore:>10,.0f} records/s  ({rates_line(restores['streams-restore'])})")
        print(f"      raw read:  median {raw:>10,.0f} records/s  ({rates_line(restores['raw-read'])})")
        print(f"      one partition after another: median {serial:>10,.0f} records/s "
              f"({rates_line(restores['streams-restore-serial'])})")
        print(f"      ratio restore/raw read: {restore / raw:.2f}, serial/raw read {serial / raw:.2f} (goal >= 0.90)")
        raw_cpu, restore_cpu, _ = (median(r.cpu_rate for r in restores[side]) for side in RESTORE_SIDES)
        print(f"      records per CPU second, median: raw read {raw_cpu:,.0f}, restore {restore_cpu:,.0f} "
              f"(ratio {restore_cpu / raw_cpu:.2f})")


def main() -> None:
    args = parse()
    skip = set(filter(None, args.skip.split(",")))
    topics: list[str] = []
    counts = restores = None
    try:
        if "count" not in skip:
            counts = count_part(args, topics)
        if "restore" not in skip:
            restores = restore_part(args, topics)
    finally:
        if not args.keep_topics:
            asyncio.run(delete_topics(args.brokers, topics))
    report(args, counts, restores)


if __name__ == "__main__":
    main()
