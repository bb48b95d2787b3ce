"""The per-record CPU cost of the framework's hot path, without a broker.

    python -m bench.hotpath [--records 200000] [--pipeline stateless|count|windowed] [--hash-sides] [--profile]

Each round runs every side in turn: for stateless the raw loop, the framework with
its stateless operators fused and without; for count (updates to an output topic)
the framework with its record cache (10 MiB) and without (cache_max_bytes=0); for
windowed, bench/windowed_count.py's two sides: a tumbling one-minute count with
final results to an output topic, and the plain count with no output topic.

Feeds the same fetched records (aiokafka ConsumerRecords, as getmany returns
them) through (a) the raw loop's work: loads, filter, map, dumps, append to a
producer batch, and (b) the framework's: poll conversion, the task's
processors, partitioning, serialization and send_many's batch building, with
the network send stubbed out; a poll's output is put in send order as in the
worker (streams/task/ordering.py).  On a machine where the broker and the client
share two cores, this CPU cost is what decides throughput, and it is far more
repeatable than a run against the broker.  --profile prints a cProfile of (b).
--hash-sides runs the fused stateless pipeline twice instead, hashing keys with
the C murmur2 and with the Python one (as where the package was built without a
C compiler); with --keys as high as --records, every key is hashed.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord, TopicPartition

from bench.workload import enrich, keep, order
from streams import App, partitioner
from streams.compiler.compile import compile_topology, plan_tasks
from streams.partitioner import KeyPartitioner
from streams.processors.record_cache import CacheBudget
from streams.runtime.stores import TaskStore
from streams.task.errors_policy import ErrorPolicy
from streams.task.ordering import in_send_order, process_poll
from streams.task.task import Task
from streams.transport.kafka.consumer import to_raw_batches
from streams.transport.kafka.producer import DEFAULTS, KafkaProducer
from streams.windows import Tumbling

INPUT, OUTPUT = "orders", "enriched"
BATCH = 10_000
FETCH = 3_300  # records of one partition per poll, about what a 1 MiB partition fetch holds
PARTITIONS = 8


Poll = dict[TopicPartition, list[tuple[int, int, bytes, bytes]]]


def fetched(records: int, keys: int) -> list[Poll]:
    """Poll results as getmany returns them: up to BATCH records, in runs of up to FETCH per partition.

    Only bytes are kept between polls; the ConsumerRecords are made per poll, as
    aiokafka's fetcher makes them, so a run holds one poll's objects at a time.
    """
    place = KeyPartitioner()
    rows: list[list[tuple[int, int, bytes, bytes]]] = [[] for _ in range(PARTITIONS)]
    for i in range(records):
        key = f"user-{i % keys:07d}".encode()
        partition = place(key, PARTITIONS)
        rows[partition].append((len(rows[partition]), 1_700_000_000_000 + i, key, orjson.dumps(order(i, keys))))
    polls: list[Poll] = []
    cursors = [0] * PARTITIONS
    partition = 0
    while any(cursor < len(rows[p]) for p, cursor in enumerate(cursors)):
        poll: Poll = {}
        held = 0
        while held < BATCH and any(cursor < len(rows[p]) for p, cursor in enumerate(cursors)):
            take = rows[partition][cursors[partition]:cursors[partition] + min(FETCH, BATCH - held)]
            if take:
                poll.setdefault(TopicPartition(INPUT, partition), []).extend(take)
                cursors[partition] += len(take)
                held += len(take)
            partition = (partition + 1) % PARTITIONS
        polls.append(poll)
    return polls


def consumer_records(poll: Poll) -> dict[TopicPartition, list[ConsumerRecord]]:
    return {tp: [ConsumerRecord(tp.topic, tp.partition, offset, timestamp, 0, key, value, None, len(key),
                                len(value), ()) for offset, timestamp, key, value in rows]
            for tp, rows in poll.items()}


async def raw_loop(polls: list[Poll]) -> int:
    producer = AIOKafkaProducer(**DEFAULTS)
    loads, dumps, written = orjson.loads, orjson.dumps, 0
    for poll in polls:
        for _tp, messages in consumer_records(poll).items():
            batch = producer.create_batch()
            for m in messages:
                value = loads(m.value)
                if not keep(m.key, value):
                    continue
                data = dumps(enrich(value))
                if batch.append(key=m.key, value=data, timestamp=m.timestamp, headers=list(m.headers)) is None:
                    batch.close()
                    batch = producer.create_batch()
                    batch.append(key=m.key, value=data, timestamp=m.timestamp, headers=list(m.headers))
                written += 1
            batch.close()
    await producer.stop()  # never started: this only marks it closed
    return written


class StubbedProducer(KafkaProducer):
    """send_many's batch building, with the hand-over to aiokafka's sender left out."""

    async def _submit(self, tp: Any, batch: Any) -> None:
        batch.close()
        self.sent += batch.record_count()

    sent = 0


def build(pipeline: str, state_dir: Path, fuse: bool = True, cache_max_bytes: int = 0,
          shape: str | None = None) -> tuple[App, dict[int, Task]]:
    app = App("hotpath", state_dir=state_dir, cache_max_bytes=cache_max_bytes)
    stream = app.stream(INPUT)
    if pipeline == "stateless":
        stream.filter(keep).map_values(enrich).to(OUTPUT)
    elif shape == "windowed":
        window = Tumbling(timedelta(minutes=1), grace=timedelta(seconds=10))
        stream.group_by_key().window(window).count(name="counts", emit="final").to(OUTPUT)
    elif shape == "plain":
        stream.group_by_key().count(name="counts")
    else:
        stream.group_by_key().count(name="counts").to_stream().to(OUTPUT)
    topology = compile_topology(app.builder, fuse=fuse)
    plan = plan_tasks(topology, {INPUT: PARTITIONS})
    counts = {**plan.partition_counts, OUTPUT: PARTITIONS}
    counts.update({spec.changelog_topic: PARTITIONS for spec in topology.stores.values()})
    tasks = {}
    policy = ErrorPolicy(app.config.on_error, app.config.dlq_topic)
    budget = CacheBudget(app.config.cache_max_bytes)
    for task_id, task_plan in plan.tasks.items():
        stores = {spec.name: TaskStore(spec, task_plan.partition, state_dir / task_id / spec.name)
                  for spec in task_plan.subtopology.stores}
        tasks[task_plan.partition] = Task(task_plan, app.app_id, counts, policy, stores=stores, cache_budget=budget)
    return app, tasks


async def framework_loop(polls: list[Poll], tasks: dict[int, Task],
                         commit_every: int) -> int:
    """What the worker does per poll, and per commit interval for stores (changelog and local batch)."""
    producer = StubbedProducer("127.0.0.1:1")
    for n, poll in enumerate(polls, 1):
        work = [(tasks[tp.partition], {tp: raws}) for tp, raws in to_raw_batches(consumer_records(poll)).items()]
        outputs = in_send_order(process_poll(work))
        if outputs:
            await producer.send_many(outputs)
        if n % commit_every == 0 or n == len(polls):
            flushed = [r for task in tasks.values() if task.flush_caches() for r in task.take_output()]
            if flushed:
                await producer.send_many(flushed)
            changelog = [r for task in tasks.values() for r in task.changelog_output()]
            await producer.send_many(changelog)
            written = {}
            for r in changelog:
                tp = (r.topic, r.partition)
                written[tp] = written.get(tp, -1) + 1
            for task in tasks.values():
                task.checkpoint_stores(written)
                task.offsets.clear()
    await producer.stop()
    return producer.sent


def timed(label: str, fn: Callable[[], Any], records: int, profile: bool = False) -> float:
    profiler = cProfile.Profile() if profile else None
    started = time.process_time()
    if profiler:
        profiler.enable()
    result = fn()
    if profiler:
        profiler.disable()
    seconds = time.process_time() - started
    print(f"  {label:10} {records / seconds:>12,.0f} records per CPU second  ({seconds:.2f}s, {result:,} written)")
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    return records / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--pipeline", choices=("stateless", "count", "windowed"), default="stateless")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--commit-every", type=int, default=5, help="polls between commits")
    parser.add_argument("--hash-sides", action="store_true", help="C against Python murmur2, stateless")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    polls = fetched(args.records, args.keys)
    if args.hash_sides:
        sides = {"c-hash": {"fuse": True}, "py-hash": {"fuse": True}}
    elif args.pipeline == "stateless":
        sides = {"fused": {"fuse": True}, "unfused": {"fuse": False}}
    elif args.pipeline == "windowed":
        sides = {"windowed": {"shape": "windowed"},
                 "plain": {"shape": "plain"}}
    else:
        sides = {"cached": {"cache_max_bytes": 10 * 1024 * 1024}, "uncached": {"cache_max_bytes": 0}}
    raw_rates: list[float] = []
    rates: dict[str, list[float]] = {side: [] for side in sides}
    for _ in range(args.rounds):
        if args.pipeline == "stateless" and not args.hash_sides:
            raw_rates.append(timed("raw", lambda: asyncio.run(raw_loop(polls)), args.records))
        for side, options in sides.items():
            with tempfile.TemporaryDirectory(prefix="bench-hotpath-") as state_dir:
                _app, tasks = build(args.pipeline, Path(state_dir), **options)
                run = framework_loop(polls, tasks, args.commit_every)
                hash_ = partitioner.murmur2
                partitioner.murmur2 = partitioner.murmur2_py if side == "py-hash" else hash_
                try:
                    rates[side].append(timed(side, lambda run=run: asyncio.run(run), args.records, args.profile))
                finally:
                    partitioner.murmur2 = hash_
                for task in tasks.values():
                    task.close()
    first, second = sides
    print(f"best of {args.rounds}: {first}/{second} {max(rates[first]) / max(rates[second]):.2f}")
    if raw_rates:
        print(f"best of {args.rounds}: {first}/raw {max(rates[first]) / max(raw_rates):.2f} (processing only: the "
              "fetch parsing and network sends that both sides share end to end are left out)")


if __name__ == "__main__":
    main()
