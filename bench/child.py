"""One measured side of a benchmark, run as `python -m bench.child <side> [options]`.

Every side prints one JSON line: the wall-clock time its first record was
consumed ("first"), the time its last result was durable ("end"), and how many
records it consumed.  The parent process turns those into rates.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import resource
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.workload import ENRICHED_AVRO, ORDER_AVRO, enrich, keep
from streams import App, AvroSerde, SchemaRegistry
from streams.runtime.restore import POLL_RECORDS as RESTORE_POLL_RECORDS
from streams.runtime.restore import restore_store, restore_stores
from streams.runtime.stores import TaskStore
from streams.serdes import resolve
from streams.state.spec import StoreSpec
from streams.transport.kafka import KafkaTransport
from streams.transport.kafka.producer import DEFAULTS as PRODUCER_DEFAULTS

POLL_RECORDS = 10_000
COUNT_STORE = "counts"
CACHE_MAX_BYTES = 10 * 1024 * 1024  # Kafka Streams' default record cache


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("side", choices=sorted(SIDES))
    parser.add_argument("--brokers", required=True)
    parser.add_argument("--input", required=True, help="input topic (the changelog for restore sides)")
    parser.add_argument("--output", default="")
    parser.add_argument("--group", default="")
    parser.add_argument("--records", type=int, required=True, help="records to consume before stopping")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--state-dir", default="")
    parser.add_argument("--commit-interval", type=float, default=1.0)
    parser.add_argument("--guarantee", default="at_least_once", help="the framework sides' processing_guarantee")
    parser.add_argument("--batch-bytes", type=int, default=0,
                        help="producer max_batch_size for both the framework and the raw loop (0: the default)")
    parser.add_argument("--value-serde", default="json", help="the input's value serde on the count-out sides")
    parser.add_argument("--raw-batch-bytes", type=int, default=0,
                        help="the raw loop's own producer max_batch_size, overriding --batch-bytes (0: not set)")
    parser.add_argument("--raw-fetch-bytes", type=int, default=0,
                        help="the raw loop's consumer max_partition_fetch_bytes (0: aiokafka's default)")
    parser.add_argument("--streams-settings", default="{}",
                        help="JSON of App keyword arguments for the framework sides, over the benchmark's own "
                             '(e.g. \'{"producer_config": {"linger_ms": 20}}\')')
    parser.add_argument("--profile", default="", help="write a cProfile of the whole run to this file")
    parser.add_argument("--registry", default="", help="schema registry URL, for the Avro sides")
    parser.add_argument("--metrics", choices=("default", "on", "off"), default="default",
                        help="on: metrics recorded, web server up and /metrics scraped every second by another "
                             "process; "
                             "off: recording level off and no web server; default: the app's defaults")
    return parser.parse_args(argv)


# -- the framework


class ConsumptionProbe:
    """Wraps a worker's consumer.poll to note the first record's arrival and when all have arrived."""

    def __init__(self, consumer: Any, expected: int) -> None:
        self.first: float | None = None
        self.first_cpu = 0.0
        self.consumed = 0
        self.expected = expected
        self.all_consumed = asyncio.Event()
        self._poll = consumer.poll
        consumer.poll = self.poll

    async def poll(self, timeout_ms: int, max_records: int | None = None) -> Any:
        batches = await self._poll(timeout_ms, max_records)
        if batches:
            if self.first is None:
                self.first, self.first_cpu = time.time(), time.process_time()
            self.consumed += sum(len(records) for records in batches.values())
            if self.consumed >= self.expected:
                self.all_consumed.set()
        return batches


def start_scraper(endpoint: str) -> subprocess.Popen:
    """A separate process that scrapes /metrics every second, as a Prometheus server would (bench/scraper.py)."""
    return subprocess.Popen([sys.executable, "-m", "bench.scraper", endpoint], stdout=subprocess.PIPE, text=True)


def stop_scraper(scraper: subprocess.Popen) -> int:
    scraper.terminate()
    out, _ = scraper.communicate(timeout=30)
    return int(out.strip() or 0)


async def run_worker(app: App, records: int) -> dict[str, Any]:
    """Run a worker until it consumed `records`, then commit: "end" is when that commit completes."""
    worker = app.create_worker()
    await worker.start()
    scraper = start_scraper(worker.endpoint) if worker.endpoint else None
    try:
        probe = ConsumptionProbe(worker.consumer, records)
        loop = asyncio.create_task(worker.loop())
        waiting = asyncio.create_task(probe.all_consumed.wait())
        await asyncio.wait([loop, waiting], return_when=asyncio.FIRST_COMPLETED)
        worker.stop()
        waiting.cancel()
        await loop
        async with worker._lock:  # the worker's own final commit, without leaving the group yet
            await worker._commit()
        end, end_cpu = time.time(), time.process_time()
        stored = sum(store.approximate_count() for task in worker.tasks.values() for store in task.stores.values())
        stats = worker.commit_stats
        report = {"first": probe.first, "end": end, "records": probe.consumed, "cpu": end_cpu - probe.first_cpu,
                  "commits": stats.commits, "commit_p50_ms": stats.percentile(0.5),
                  "commit_p99_ms": stats.percentile(0.99), "stored_keys_estimate": stored}
        if scraper is not None:
            report["scrapes"] = stop_scraper(scraper)
            scraper = None
    finally:
        if scraper is not None:
            scraper.kill()
        await worker.shutdown(commit=False)
    return report


def producer_config(args: argparse.Namespace) -> dict[str, Any]:
    """The framework's producer settings, which the raw loop uses too, so that both send alike."""
    return {"max_batch_size": args.batch_bytes} if args.batch_bytes else {}


def make_app(args: argparse.Namespace) -> App:
    metrics = {"on": {"metrics_recording_level": "info", "web_port": 0},
               "off": {"metrics_recording_level": "off"}}.get(args.metrics, {})
    settings = {"state_dir": args.state_dir or None, "commit_interval": args.commit_interval,
                "poll_max_records": POLL_RECORDS, "producer_config": producer_config(args),
                "processing_guarantee": args.guarantee, **metrics, **json.loads(args.streams_settings)}
    return App(args.group, args.brokers, **settings)


async def streams_stateless(args: argparse.Namespace) -> dict[str, Any]:
    app = make_app(args)
    app.stream(args.input).filter(keep).map_values(enrich).to(args.output)
    return await run_worker(app, args.records)


async def streams_avro_stateless(args: argparse.Namespace) -> dict[str, Any]:
    """streams_stateless with Avro values through the schema registry, in and out."""
    registry = SchemaRegistry(args.registry)
    app = make_app(args)
    app.stream(args.input, value_serde=AvroSerde(registry, ORDER_AVRO)).filter(keep).map_values(enrich) \
        .to(args.output, value_serde=AvroSerde(registry, ENRICHED_AVRO))
    return await run_worker(app, args.records)


async def streams_fastavro_stateless(args: argparse.Namespace) -> dict[str, Any]:
    """streams_avro_stateless with fastavro alone: as if the C codec had not been built."""
    from streams.schema_registry import avro_plan

    avro_plan.compiled = lambda schema: None
    return await streams_avro_stateless(args)


async def streams_count(args: argparse.Namespace) -> dict[str, Any]:
    app = make_app(args)
    app.stream(args.input).group_by_key().count(name=COUNT_STORE)
    return await run_worker(app, args.records)


async def streams_count_out(args: argparse.Namespace, cache_max_bytes: int | None = None) -> dict[str, Any]:
    """The count with its updates written to an output topic; the record cache as the app's defaults say
    (off) unless cache_max_bytes is given."""
    app = make_app(args)
    if cache_max_bytes is not None:
        app.configure(cache_max_bytes=cache_max_bytes)
    app.stream(args.input, value_serde=args.value_serde).group_by_key().count(name=COUNT_STORE).to_stream() \
        .to(args.output)
    return await run_worker(app, args.records)


async def streams_count_out_cached(args: argparse.Namespace) -> dict[str, Any]:
    return await streams_count_out(args, cache_max_bytes=CACHE_MAX_BYTES)


async def streams_count_out_uncached(args: argparse.Namespace) -> dict[str, Any]:
    return await streams_count_out(args, cache_max_bytes=0)


async def streams_restore(args: argparse.Namespace) -> dict[str, Any]:
    """Restore every partition's count store from the changelog, all partitions at once as a worker does."""
    spec = StoreSpec(COUNT_STORE, resolve("str", "str"), resolve("json", "json"), args.input)
    consumer = KafkaTransport(args.brokers).consumer(None, isolation_level="read_committed")
    await consumer.start()
    stores = [TaskStore(spec, p, Path(args.state_dir) / f"0_{p}" / COUNT_STORE) for p in range(args.partitions)]
    try:
        first, first_cpu = time.time(), time.process_time()
        if getattr(args, "serial", False):
            results = [await restore_store(store, consumer) for store in stores]
        else:
            results = await restore_stores(stores, consumer)
        end, end_cpu = time.time(), time.process_time()
    finally:
        for store in stores:
            store.close()
        await consumer.stop()
    restored = sum(r.restored for r in results if r is not None)
    return {"first": first, "end": end, "records": restored, "cpu": end_cpu - first_cpu}


# -- plain aiokafka


async def raw_stateless(args: argparse.Namespace) -> dict[str, Any]:
    """The same pipeline by hand: getmany, loads, filter, map, dumps, one batch per partition, commit.

    It uses the producer settings the framework uses, commits on the same
    interval, and waits for its sends before each commit, as the framework does.
    """
    fetch = {"max_partition_fetch_bytes": args.raw_fetch_bytes} if args.raw_fetch_bytes else {}
    consumer = AIOKafkaConsumer(args.input, bootstrap_servers=args.brokers, group_id=args.group,
                                auto_offset_reset="earliest", enable_auto_commit=False, **fetch)
    batch = {"max_batch_size": args.raw_batch_bytes} if args.raw_batch_bytes else {}
    producer = AIOKafkaProducer(bootstrap_servers=args.brokers,
                                **{**PRODUCER_DEFAULTS, **producer_config(args), **batch})
    await producer.start()
    await consumer.start()
    loads, dumps, output = orjson.loads, orjson.dumps, args.output
    first: float | None = None
    first_cpu = 0.0
    consumed = 0
    offsets: dict[Any, int] = {}
    deliveries: list[Awaitable[Any]] = []
    last_commit = time.monotonic()
    try:
        while consumed < args.records:
            batches = await consumer.getmany(timeout_ms=100, max_records=POLL_RECORDS)
            if batches and first is None:
                first, first_cpu = time.time(), time.process_time()
            for tp, messages in batches.items():
                batch = producer.create_batch()
                for m in messages:
                    value = loads(m.value)
                    if not keep(m.key, value):
                        continue
                    data = dumps(enrich(value))
                    if batch.append(key=m.key, value=data, timestamp=m.timestamp, headers=list(m.headers)) is None:
                        batch.close()
                        deliveries.append(await producer.send_batch(batch, output, partition=tp.partition))
                        batch = producer.create_batch()
                        batch.append(key=m.key, value=data, timestamp=m.timestamp, headers=list(m.headers))
                if batch.record_count():
                    batch.close()
                    deliveries.append(await producer.send_batch(batch, output, partition=tp.partition))
                consumed += len(messages)
                offsets[tp] = messages[-1].offset + 1
            if time.monotonic() - last_commit >= args.commit_interval:
                last_commit = time.monotonic()
                await asyncio.gather(*deliveries)
                deliveries.clear()
                await consumer.commit(offsets)
        await asyncio.gather(*deliveries)
        await consumer.commit(offsets)
        end, end_cpu = time.time(), time.process_time()
    finally:
        await consumer.stop()
        await producer.stop()
    return {"first": first, "end": end, "records": consumed, "cpu": end_cpu - first_cpu}


async def raw_read(args: argparse.Namespace) -> dict[str, Any]:
    """Read a whole topic, committed records only, with getmany until every partition's end."""
    from aiokafka import TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=args.brokers, enable_auto_commit=False,
                                isolation_level="read_committed")
    await consumer.start()
    try:
        tps = [TopicPartition(args.input, p) for p in range(args.partitions)]
        consumer.assign(tps)
        first, first_cpu = time.time(), time.process_time()
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if await consumer.position(tp) < ends[tp]}
        consumed = 0
        while remaining:
            batches = await consumer.getmany(timeout_ms=200, max_records=RESTORE_POLL_RECORDS)
            for tp, messages in batches.items():
                consumed += len(messages)
                if messages[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        end, end_cpu = time.time(), time.process_time()
    finally:
        await consumer.stop()
    return {"first": first, "end": end, "records": consumed, "cpu": end_cpu - first_cpu}


SIDES: dict[str, Callable[[argparse.Namespace], Awaitable[dict[str, Any]]]] = {
    "raw-stateless": raw_stateless,
    "raw-read": raw_read,
    "streams-stateless": streams_stateless,
    "streams-avro-stateless": streams_avro_stateless,
    "streams-fastavro-stateless": streams_fastavro_stateless,
    "streams-count": streams_count,
    "streams-count-out": streams_count_out,
    "streams-count-out-cached": streams_count_out_cached,
    "streams-count-out-uncached": streams_count_out_uncached,
    "streams-restore": streams_restore,
    "streams-restore-serial": lambda args: streams_restore(argparse.Namespace(**{**vars(args), "serial": True})),
}


def vm_hwm_kib() -> int:
    """This process's peak resident set, as /proc reports it."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if not args.profile:
        report = asyncio.run(SIDES[args.side](args))
    else:
        profiler = cProfile.Profile()
        report = profiler.runcall(asyncio.run, SIDES[args.side](args))
        profiler.dump_stats(args.profile)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    report.update(cpu_seconds=usage.ru_utime + usage.ru_stime, minor_faults=usage.ru_minflt, vm_hwm_kib=vm_hwm_kib())
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
