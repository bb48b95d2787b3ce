"""The stateless pipeline with Avro values through the schema registry, against the same with JSON.

    python -m bench.avro_vs_json [--records 200000] [--rounds 3] [--registry URL]

The pipeline is bench/stateless.py's filter plus map_values.  The same orders are
produced once as JSON (~200 bytes each) and once as Avro in the Confluent wire
format (97 bytes of payload), each on its own 8-partition topic; then the two
sides run alternately, each in a fresh child process with a fresh consumer
group and output topic.  The Avro side reads with AvroSerde and writes the
enriched orders with another AvroSerde, so it pays fastavro on both ends where
the JSON side pays orjson.  A third side, fastavro, is the Avro side with
the C codec turned off (as on a machine that built the package without a C
compiler), also on the Avro input.  Reports each side's median records/s, records per
CPU second, and the ratios Avro/JSON.  Needs a broker (STREAMS_BROKERS) and a
registry (STREAMS_SCHEMA_REGISTRY, or scripts/schema-registry's default).
"""

from __future__ import annotations

import argparse
import asyncio
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
from bench.workload import ORDER_AVRO, kept, order, orders
from streams import AvroSerde, SchemaRegistry

SIDES = {"json": "streams-stateless", "avro": "streams-avro-stateless", "fastavro": "streams-fastavro-stateless"}


def parse() -> argparse.Namespace:
    parser = workload_parser(__doc__, records=200_000)
    parser.add_argument("--registry", default="", help="the registry's Confluent API URL")
    return parser.parse_args()


def avro_orders(registry: SchemaRegistry, topic: str, count: int, keys: int):
    """(key, value) bytes of the orders in the wire format, the schema registered under <topic>-value."""
    serde = AvroSerde(registry, ORDER_AVRO).bind(topic, is_key=False)
    for i in range(count):
        yield f"user-{i % keys:07d}".encode(), serde.serialize(order(i, keys))


def prepare_inputs(args: argparse.Namespace, registry: SchemaRegistry, topics: list[str]) -> dict[str, str]:
    inputs = {"json": unique("orders-json"), "avro": unique("orders-avro")}
    topics.extend(inputs.values())
    asyncio.run(create_topics(args.brokers, {t: args.partitions for t in inputs.values()}))
    started = time.perf_counter()
    asyncio.run(produce(args.brokers, inputs["json"], args.partitions, orders(args.records, args.keys)))
    asyncio.run(produce(args.brokers, inputs["avro"], args.partitions,
                        avro_orders(registry, inputs["avro"], args.records, args.keys)))
    print(f"input: {args.records:,} orders as JSON on {inputs['json']} and as Avro on {inputs['avro']} "
          f"in {time.perf_counter() - started:.1f}s", flush=True)
    return inputs


def run_side(side: str, args: argparse.Namespace, topic: str, topics: list[str]) -> ChildResult:
    output, group = unique("out"), unique("group")
    topics.extend([output, f"{group}-dlq"])
    asyncio.run(create_topics(args.brokers, {output: args.partitions}))
    with tempfile.TemporaryDirectory(prefix="bench-state-") as state_dir:
        result = run_child(SIDES[side], ["--brokers", args.brokers, "--input", topic, "--output", output,
                                         "--group", group, "--records", str(args.records),
                                         "--state-dir", state_dir, "--registry", args.registry])
    print(f"  {side:8} {result.rate:>10,.0f} records/s  ({result.seconds:.2f}s; {result.cpu_rate:,.0f} records "
          f"per CPU second; peak RSS {result.max_rss_bytes / (1 << 20):,.0f} MiB)", flush=True)
    return result


def main() -> None:
    args = parse()
    registry = SchemaRegistry(args.registry or None)
    registry.check()
    args.registry = registry.url
    topics: list[str] = []
    results: dict[str, list[ChildResult]] = {side: [] for side in SIDES}
    try:
        inputs = prepare_inputs(args, registry, topics)
        inputs["fastavro"] = inputs["avro"]
        for run in range(args.rounds):  # A B C C B A ...: drift on the shared machine hits every side alike
            for side in (list(SIDES) if run % 2 == 0 else list(SIDES)[::-1]):
                results[side].append(run_side(side, args, inputs[side], topics))
    finally:
        asyncio.run(delete_topics(args.brokers, topics))
    print(f"\nstateless filter + map_values, {args.records:,} records in, {kept(args.records):,} out, "
          f"{args.partitions} partitions, {args.rounds} rounds")
    rates = {side: median(r.rate for r in runs) for side, runs in results.items()}
    cpu = {side: median(r.cpu_rate for r in runs) for side, runs in results.items()}
    for side, runs in results.items():
        print(f"  {side:8} median {rates[side]:>10,.0f} records/s ({rates_line(runs)}); "
              f"{cpu[side]:,.0f} records per CPU second")
    for side in ("avro", "fastavro"):
        print(f"  ratio {side}/json: {rates[side] / rates['json']:.2f} (goal >= 0.80); "
              f"per CPU second {cpu[side] / cpu['json']:.2f}")


if __name__ == "__main__":
    main()
