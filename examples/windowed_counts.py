"""Windowed counts: page views per page and minute (final results only) and per-user sessions.

It starts a worker in this process, sends about twenty minutes of sample page
views (event time taken from the payload, a few out of order, one far too
late), waits until every minute's final count is out, prints them, queries the
sessions store, and exits.

    python examples/windowed_counts.py                                   # in-process broker
    STREAMS_BROKERS=127.0.0.1:9092 python examples/windowed_counts.py    # the same app on Kafka
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
import uuid
from datetime import timedelta

from streams import App, Session, Tumbling, WindowedJsonSerde

RUN = uuid.uuid4().hex[:8]
USERS, PAGES = ["ada", "bo", "cyd", "dee"], ["/", "/search", "/item", "/cart"]

app = App(f"windowed-counts-{RUN}", brokers="memory://windowed-counts", commit_interval=0.5,
          state_dir=tempfile.mkdtemp(prefix="streams-windowed-"))

# One input partition keeps the views in event-time order through the repartition by page.
page_views = app.topic(f"windowed-views-{RUN}", partitions=1)
# Results are keyed by window: Windowed(page, start, end), written as JSON {"key", "start", "end"}.
per_minute_topic = app.topic(f"windowed-per-minute-{RUN}", partitions=1, key_serde=WindowedJsonSerde())

# Event time is the "ts" field of each view; records are keyed by user.
views = app.stream(page_views, timestamp_extractor=lambda user, view, raw: view["ts"])

# One count per page and minute, emitted once the minute (plus 10 s of grace) has passed;
# a partition that receives nothing for 2 s of wall-clock time closes its open minutes.
per_minute = views.group_by(lambda user, view: view["page"], name="by-page").window(
    Tumbling(timedelta(minutes=1), grace=timedelta(seconds=10))
).count(name="views-per-minute", emit="final", idle_close=timedelta(seconds=2))
per_minute.to(per_minute_topic)

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
    start = time.time_ns() // 1_000_000 // 60_000 * 60_000 - 30 * 60_000  # thirty minutes ago
    sample = sample_views(start)
    minutes = {(v["page"], v["ts"] // 60_000) for v in sample[:-1]}

    async with app.running() as run:
        for view in sample:
            await run.send(page_views, view["user"], view, timestamp=view["ts"])
        results = await run.read(per_minute_topic, count=len(minutes), timeout=60)
        user_sessions = {user: app.store("sessions").fetch(user) for user in USERS}
        late = run.metrics["late_records"]

    print(f"{len(sample)} views over {(sample[-2]['ts'] - start) // 60_000} minutes; "
          f"{late} late drops (each windowed aggregation drops the late view)")
    print("views per page and minute (final results):")
    for result in sorted(results, key=lambda r: (r.key.start, r.key.key)):
        minute = time.strftime("%H:%M", time.gmtime(result.key.start / 1000))
        print(f"  {minute} {result.key.key:8} {result.value:3}")
    print("sessions per user:")
    for user, found in user_sessions.items():
        spans = ", ".join(f"{(w.end - w.start) // 1000}s/{n} views" for w, n in found)
        print(f"  {user:4} {spans}")


if __name__ == "__main__":
    asyncio.run(main())
