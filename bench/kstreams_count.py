"""Count by key with an output topic: streams against Kafka Streams on the same broker and input.

    python -m bench.kstreams_count [--records 1000000] [--keys 100000] [--rounds 3]

The input (~200-byte JSON orders, 8 partitions) is produced once.  Three sides then
run alternately (A B C, C B A, ...), each in a fresh child process with a fresh
consumer group, state directory and output topic, all at-least-once with a 1 s
commit interval:

- kstreams: Kafka Streams (bench/kstreams/, built with Maven), one stream thread,
  `groupByKey().count()` -> `toStream()` -> output topic, its defaults otherwise
  (record cache on, 10 MiB); String keys, values left as bytes (the count ignores them);
- streams-cached: `group_by_key().count().to_stream().to(out)` with cache_max_bytes=10 MiB;
- streams-default: the same with the app's defaults (record cache off).

Every side is timed the same way: from its first consumed record (noted inside the
child) to the moment this process sees the group's committed offsets cover the whole
input (the admin client polls them every 50 ms).  Each side asks for a commit as soon
as it has processed the last record.  Rates are records/s over that span; the
children also report their own CPU seconds over it.  A second rate leaves out the
start and the end: 80% of the records over the time between the polls that first saw
10% and 90% of the input committed (steady state, without the JVM's warm-up, but
coarse: commits come once a second).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from bench.common import REPO, create_topics, delete_topics, median, unique, workload_parser
from bench.stateful import alternate
from bench.stateless import prepare_input

MODULE = REPO / "bench" / "kstreams"
SIDES = ("kstreams", "streams-cached", "streams-default")
CHILD_SIDES = {"streams-cached": "streams-count-out-cached", "streams-default": "streams-count-out"}
POLL_S = 0.05


def parse() -> argparse.Namespace:
    parser = workload_parser(__doc__)
    parser.add_argument("--sides", default=",".join(SIDES), help="comma-separated subset of " + ", ".join(SIDES))
    parser.add_argument("--value-serde", default="json",
                        help="the streams sides' input value serde (json, their default; bytes, as Kafka Streams)")
    parser.add_argument("--keep-topics", action="store_true")
    parser.add_argument("--log-dir", default="", help="keep each child's stderr here")
    return parser.parse_args()


def build_kstreams() -> str:
    """Build bench/kstreams with Maven (as tests/oracle is built) and return its classpath."""
    built = subprocess.run(["mvn", "-q", "-B", "-Dstyle.color=never", "package"], cwd=MODULE,
                           capture_output=True, text=True, timeout=900)
    if built.returncode != 0:
        sys.exit(f"building bench/kstreams failed:\n{built.stdout[-4000:]}\n{built.stderr[-4000:]}")
    return f"{MODULE / 'target' / 'classes'}:{MODULE / 'target' / 'lib'}/*"


@dataclass
class Run:
    """One side's run: the child's report plus the end this process observed."""

    side: str
    records: int
    first: float
    end: float  # when the committed offsets covered the input, seen from here
    cpu: float  # the child's CPU seconds from its first record to its own end
    load: float  # one-minute load average when the run ended
    timeline: list[tuple[float, int]]  # (time, records committed) at every poll

    def seen(self, fraction: float) -> float:
        """When the polls first saw this fraction of the input committed."""
        return next(t for t, n in self.timeline if n >= fraction * self.records)

    @property
    def steady_rate(self) -> float | None:
        """None when one commit covered both marks (a run of about a second or less)."""
        span = self.seen(0.9) - self.seen(0.1)
        return 0.8 * self.records / span if span > 0 else None

    @property
    def rate(self) -> float:
        return self.records / (self.end - self.first)

    @property
    def cpu_rate(self) -> float:
        return self.records / self.cpu


def per_second(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate:,.0f}/s"


async def committed(admin: AIOKafkaAdminClient, group: str, topic: str) -> int:
    """How many input records the group's committed offsets cover (0 until it has committed)."""
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    except Exception:  # noqa: BLE001 - the group may not exist yet
        return 0
    return sum(meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta is not None)


async def observe(command: list[str], log: Path, brokers: str, group: str, topic: str,
                  records: int) -> tuple[list[tuple[float, int]], str]:
    """Run the child; return what its group had committed at each poll until it covered `records`,
    and the child's stdout."""
    admin = AIOKafkaAdminClient(bootstrap_servers=brokers)
    await admin.start()
    with log.open("wb") as stderr:
        child = await asyncio.create_subprocess_exec(*command, cwd=REPO, stdout=asyncio.subprocess.PIPE,
                                                     stderr=stderr)
        output = asyncio.create_task(child.stdout.read())
        timeline: list[tuple[float, int]] = []
        try:
            while not (timeline and timeline[-1][1] >= records) and not output.done():
                timeline.append((time.time(), await committed(admin, group, topic)))
                await asyncio.sleep(POLL_S)
            stdout = (await asyncio.wait_for(output, timeout=600)).decode()
            await child.wait()
        finally:
            if child.returncode is None:
                child.kill()
                await child.wait()
            await admin.close()
    if child.returncode != 0 or not timeline or timeline[-1][1] < records:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{command[:4]} failed (exit {child.returncode}):\n{tail}")
    return timeline, stdout


def run_side(side: str, args: argparse.Namespace, topic: str, topics: list[str], classpath: str) -> Run:
    output, group = unique("out"), unique("ks-group")
    topics.extend([output, f"{group}-dlq", f"{group}-counts-changelog"])
    asyncio.run(create_topics(args.brokers, {output: args.partitions}))
    with tempfile.TemporaryDirectory(prefix="bench-ks-") as state_dir:
        common = ["--input", topic, "--output", output, "--records", str(args.records), "--state-dir", state_dir]
        if side == "kstreams":
            command = ["java", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp", classpath,
                       "dev.streams.bench.CountBench", "--bootstrap", args.brokers, "--app-id", group,
                       "--commit-interval-ms", "1000", *common]
        else:
            command = [sys.executable, "-m", "bench.child", CHILD_SIDES[side], "--brokers", args.brokers,
                       "--group", group, "--commit-interval", "1.0", "--guarantee", "at_least_once",
                       "--value-serde", args.value_serde, *common]
        log = Path(args.log_dir or state_dir) / f"{side}-{group}.log"
        timeline, stdout = asyncio.run(observe(command, log, args.brokers, group, topic, args.records))
    report = json.loads([line for line in stdout.splitlines() if line.startswith("{")][-1])
    run = Run(side, args.records, report["first"], timeline[-1][0], report["cpu"], os.getloadavg()[0], timeline)
    print(f"  {side:16} {run.rate:>9,.0f} records/s  ({run.end - run.first:.2f}s; "
          f"10%-90%: {per_second(run.steady_rate)}; {run.cpu_rate:,.0f} records per CPU second; "
          f"load {run.load:.1f})", flush=True)
    return run


def report(args: argparse.Namespace, results: dict[str, list[Run]]) -> None:
    print(f"\ncount by key to an output topic, {args.records:,} records over {args.keys:,} keys, "
          f"{args.partitions} partitions, {args.rounds} rounds (streams values: {args.value_serde})")
    rates = {side: median(r.rate for r in runs) for side, runs in results.items()}
    steady = {side: median(r.steady_rate for r in runs) if all(r.steady_rate for r in runs) else None
              for side, runs in results.items()}
    cpu = {side: median(r.cpu_rate for r in runs) for side, runs in results.items()}
    for side, runs in results.items():
        print(f"  {side:16} median {rates[side]:>9,.0f} records/s  ({', '.join(f'{r.rate:,.0f}' for r in runs)}); "
              f"10%-90% {per_second(steady[side])}; per CPU second {cpu[side]:,.0f}")
    if "kstreams" in rates:
        for side in (s for s in results if s != "kstreams"):
            mine, theirs = steady[side], steady["kstreams"]
            print(f"  ratio {side}/kstreams: {rates[side] / rates['kstreams']:.2f} (goal >= 1.5); "
                  f"10%-90% {f'{mine / theirs:.2f}' if mine and theirs else 'n/a'}; "
                  f"per CPU second {cpu[side] / cpu['kstreams']:.2f}")
    loads = [r.load for runs in results.values() for r in runs]
    print(f"  load average (1 min) at the end of the runs: {min(loads):.1f} to {max(loads):.1f}")


def main() -> None:
    args = parse()
    sides = tuple(args.sides.split(","))
    classpath = build_kstreams() if "kstreams" in sides else ""
    topics: list[str] = []
    try:
        topic = prepare_input(args, topics)
        print(f"load average before the runs: {os.getloadavg()[0]:.1f}", flush=True)
        results = alternate(sides, args.rounds, lambda side, _: run_side(side, args, topic, topics, classpath))
    finally:
        if not args.keep_topics:
            asyncio.run(delete_topics(args.brokers, topics))
    report(args, results)


if __name__ == "__main__":
    main()
