"""Windowed counts: page views per page and minute (final results only) and per-user sessions.

It creates its topics, produces about twenty minutes of sample page views (event
time taken from the payload, a few out of order, one far too late), runs a
worker until every minute's final count is out, prints them, queries the
sessions store, and exits.

    STREAMS_BROKERS=127.0.0.1:9092 python examples/windowed_counts.py
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
import uuid
from datetime import timedelta

import orjson

from streams import App
from streams.transport import OutRecord, TopicPartition, TopicSpec
from streams.windows import Session, Tumbling, WindowedSerde

RUN = uuid.uuid4().hex[:8]
VIEWS, PER_MINUTE = f"windowed-views-{RUN}", f"windowed-per-minute-{RUN}"
USERS, PAGES = ["ada", "bo", "cyd", "dee"], ["/", "/search", "/item", "/cart"]

app = App(f"windowed-counts-{RUN}", brokers="127.0.0.1:9092", commit_interval=0.5,
          state_dir=tempfile.mkdtemp(prefix="streams-windowed-"))

# Event time is the "ts" field of each view; records are keyed by user.
views = app.stream(VIEWS, timestamp_extractor=lambda user, view, raw: view["ts"])

# One count per page and minute, emitted once the minute (plus 10 s of grace) has passed;
# a partition that receives nothing for 2 s of wall-clock time closes its open minutes.
per_minute = views.group_by(lambda user, view: view["page"], name="by-page").window(
    Tumbling(timedelta(minutes=1), grace=timedelta(seconds=10))
).count(name="views-per-minute", emit="final", idle_close=timedelta(seconds=2))
per_minute.to(PER_MINUTE)

# Sessions per user: views less than five minutes apart belong to one session.  Closed
# sessions stay queryable for an hour (by default they go once they close).
sessions = views.group_by_key().window(Session(timedelta(minutes=5))).count(name="sessions",
                                                                            retention=timedelta(hours=1))


def sample_views(start_ms: int) -> list[dict]:
    rng = random.Random(7)
    views, ts = [], start_ms
    for i in range(400):
        ts += rng.choice([100, 500, 2_000, 5_000, 30_000 if rng.random() < 0.05 else 1_000])
        ts += 6 * 60_000 if i == 200 else 0  # a quiet six minutes: every user's session ends
        jitter = -rng.randint(0, 8_000) if rng.random() < 0.1 else 0  # out of order, within grace
        views.append({"user": rng.choice(USERS), "page": rng.choice(PAGES), "ts": ts + jitter})
    views.append({"user": "ada", "page": "/", "ts": start_ms + 1_000})  # long after its minute closed
    return views


async def main() -> None:
    transport = app.transport()
    admin = transport.admin()
    await admin.start()
    # One input partition keeps the views in event-time order through the repartition by page.
    await admin.create_topics([TopicSpec(VIEWS, 1), TopicSpec(PER_MINUTE, 1)])
    start = time.time_ns() // 1_000_000 // 60_000 * 60_000 - 30 * 60_000  # thirty minutes ago
    sample = sample_views(start)
    producer = transport.producer()
    await producer.start()
    await producer.send_many(OutRecord(VIEWS, 0, v["user"].encode(), orjson.dumps(v), v["ts"], ()) for v in sample)
    await producer.flush()
    await producer.stop()
    minutes = {(v["page"], v["ts"] // 60_000) for v in sample[:-1]}

    worker = app.create_worker(transport)
    runner = asyncio.create_task(worker.run())
    await worker.wait_started()
    results = []
    while len(results) < len(minutes):
        await asyncio.sleep(0.5)
        results = await read_all(transport, PER_MINUTE)
    user_sessions = {user: app.store("sessions").fetch(user) for user in USERS}
    late = worker.metrics.get("late_records")
    worker.stop()
    await runner

    print(f"{len(sample)} views over {(sample[-2]['ts'] - start) // 60_000} minutes; "
          f"{late} late drops (each windowed aggregation drops the late view)")
    print("views per page and minute (final results):")
    for window, count in sorted(results, key=lambda r: (r[0].start, r[0].key)):
        minute = time.strftime("%H:%M", time.gmtime(window.start / 1000))
        print(f"  {minute} {window.key:8} {count:3}")
    print("sessions per user:")
    for user, found in user_sessions.items():
        spans = ", ".join(f"{(w.end - w.start) // 1000}s/{n} views" for w, n in found)
        print(f"  {user:4} {spans}")
    await admin.delete_topics([VIEWS, PER_MINUTE])
    await admin.stop()


async def read_all(transport, topic: str) -> list[tuple]:
    """Every (Windowed, count) of a one-partition topic, from its start to its end."""
    serde = WindowedSerde("str")
    consumer = transport.consumer(None)
    await consumer.start()
    tp = TopicPartition(topic, 0)
    end = (await consumer.end_offsets([tp]))[tp]
    consumer.assign([tp])
    consumer.seek(tp, 0)
    records = []
    while await consumer.position(tp) < end:
        batch = (await consumer.poll(500)).get(tp, [])
        records.extend((serde.deserialize(r.key), orjson.loads(r.value)) for r in batch)
    await consumer.stop()
    return records


if __name__ == "__main__":
    asyncio.run(main())
