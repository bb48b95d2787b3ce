"""Late drops of a windowed count after a repartition, over a backlog, against the real broker.

    python -m bench.late_drops [--records 3000] [--partitions 2 4] [--workers 1] [--grace-ms 2000]

The input is a backlog, produced before any worker starts: `--records` records
of 20 users, record i at event time base + i * 200 ms (also its Kafka
timestamp), on partition i % partitions, so each partition is in event-time
order and all partitions cover the same time range.  The app regroups by user
(select_key, then a repartition topic) and counts per user in tumbling 10 s
windows with the given grace; `--workers` workers of one group run it in this
process.  Reported per partition count: the share of records the count dropped
as late, and how far records arrived behind the newest one their downstream
task had seen (the disorder the repartition topic carries: a grace at least
this large drops nothing).

Not a timing benchmark: the numbers are counts, and docs/windows.md keeps them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import time
import uuid
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams import App
from streams.partitioner import partition_for
from streams.windows import Tumbling

USERS = [f"user-{n}" for n in range(20)]
STEP_MS = 200


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=3000)
    parser.add_argument("--partitions", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--grace-ms", type=int, default=2000)
    parser.add_argument("--poll-max-records", type=int, default=10_000)
    parser.add_argument("--brokers", default=os.environ.get("STREAMS_BROKERS", "127.0.0.1:9092"))
    return parser.parse_args(argv)


async def produce_backlog(brokers: str, topic: str, records: int, partitions: int, base: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=brokers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()
    rng = random.Random(7)
    producer = AIOKafkaProducer(bootstrap_servers=brokers, linger_ms=5)
    await producer.start()
    try:
        sent = []
        for i in range(records):
            user, ts = rng.choice(USERS), base + i * STEP_MS
            sent.append(await producer.send(topic, orjson.dumps({"user": user, "ts": ts}), key=user.encode(),
                                            partition=i % partitions, timestamp_ms=ts))
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def measure(brokers: str, records: int, partitions: int, workers: int, grace_ms: int,
                  poll_max_records: int) -> dict:
    topic, app_id = f"late-in-{uuid.uuid4().hex[:8]}", f"late-{uuid.uuid4().hex[:8]}"
    base = (int(time.time() * 1000) - 86_400_000) // 10_000 * 10_000
    await produce_backlog(brokers, topic, records, partitions, base)
    newest: dict[int, int] = {}
    disorder: list[int] = []

    def track(user: str, value: dict) -> None:
        task = partition_for(user.encode(), partitions)  # the downstream task this record reached
        behind = newest.get(task, value["ts"]) - value["ts"]
        if behind > 0:
            disorder.append(behind)
        else:
            newest[task] = value["ts"]

    with tempfile.TemporaryDirectory() as state:
        apps = []
        for n in range(workers):
            app = App(app_id, brokers=brokers, state_dir=Path(state) / str(n), commit_interval=0.5,
                      poll_max_records=poll_max_records)
            (app.stream(topic).select_key(lambda key, value: value["user"]).repartition(name="by-user")
             .peek(track).group_by_key()
             .window(Tumbling(10_000, grace=grace_ms)).count(name="counts"))
            apps.append(app)
        running = [app.create_worker() for app in apps]
        runners = [asyncio.create_task(worker.run()) for worker in running]
        started = time.monotonic()
        try:
            # Done when every record went through the source and through the repartition topic.
            while sum(w.metrics.get("records_processed") for w in running) < 2 * records:
                if time.monotonic() - started > 120:
                    raise TimeoutError("the workers did not process the backlog within 120 s")
                await asyncio.sleep(0.1)
            late = sum(w.metrics.get("late_records") for w in running)
        finally:
            for worker in running:
                worker.stop()
            await asyncio.gather(*runners, return_exceptions=True)
    disorder.sort()
    return {"partitions": partitions, "workers": workers, "late": late, "records": records,
            "max_behind_ms": disorder[-1] if disorder else 0,
            "p99_behind_ms": disorder[int(0.99 * (len(disorder) - 1))] if disorder else 0}


async def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    print(f"{args.records} records, tumbling 10 s windows, grace {args.grace_ms} ms, {args.workers} worker(s), "
          f"polls of up to {args.poll_max_records} records")
    for partitions in args.partitions:
        result = await measure(args.brokers, args.records, partitions, args.workers, args.grace_ms,
                               args.poll_max_records)
        print(f"{partitions} input partitions: {result['late']} of {result['records']} late "
              f"({100 * result['late'] / result['records']:.1f}%); records arrived up to "
              f"{result['max_behind_ms']} ms behind their task's newest (p99 {result['p99_behind_ms']} ms)")


if __name__ == "__main__":
    asyncio.run(main())
