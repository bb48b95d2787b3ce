"""Quickstart: count page views per user and flag heavy users, end to end.

It creates its topics, produces sample click events, runs a worker until every
event is processed, prints the per-user counts from the state store and the
alerts topic, and exits.

    python examples/quickstart.py                                    # in-process broker, no Kafka
    STREAMS_BROKERS=127.0.0.1:9092 python examples/quickstart.py     # the same app on Kafka
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import uuid

from streams import App
from streams.transport import OutRecord, TopicPartition, TopicSpec

RUN = uuid.uuid4().hex[:8]
CLICKS, ALERTS = f"quickstart-clicks-{RUN}", f"quickstart-alerts-{RUN}"
USERS = ["ada", "bo", "cyd", "dee"]
EVENTS = 2_000

app = App(f"quickstart-{RUN}", brokers="memory://quickstart",
          state_dir=tempfile.mkdtemp(prefix="streams-quickstart-"), commit_interval=0.5)

clicks = app.stream(CLICKS)
views = clicks.filter(lambda key, click: click["kind"] == "view")
per_user = views.group_by(lambda key, click: click["user"]).count(name="views-per-user")
per_user.to_stream().filter(lambda user, n: n % 250 == 0).map_values(lambda n: f"{n} views").to(ALERTS)


async def main() -> None:
    transport = app.transport()
    admin = transport.admin()
    await admin.start()
    await admin.create_topics([TopicSpec(CLICKS, 4), TopicSpec(ALERTS, 1)])
    producer = transport.producer()
    await producer.start()
    rng = random.Random(7)
    events = [{"user": rng.choice(USERS), "kind": rng.choice(["view", "view", "view", "buy"])}
              for _ in range(EVENTS)]
    await producer.send_many(OutRecord(CLICKS, i % 4, str(i).encode(), _json(e), None, ())
                             for i, e in enumerate(events))
    await producer.flush()
    await producer.stop()
    expected = {u: sum(1 for e in events if e["user"] == u and e["kind"] == "view") for u in USERS}

    worker = app.create_worker(transport)
    runner = asyncio.create_task(worker.run())
    await worker.wait_started()
    while dict(app.store("views-per-user").items()) != expected:
        await asyncio.sleep(0.2)
    counts = dict(app.store("views-per-user").items())
    worker.stop()
    await runner

    print(f"processed {EVENTS} click events on {transport.__class__.__name__}; views per user:")
    for user, count in sorted(counts.items()):
        print(f"  {user:>4}: {count}")
    for key, value in await read_all(transport, ALERTS):
        print(f"  alert: {key.decode()} reached {value.decode()}")
    await admin.delete_topics([CLICKS, ALERTS])
    await admin.stop()


async def read_all(transport, topic: str) -> list[tuple[bytes, bytes]]:
    """Every record of a one-partition topic, from its start to its end."""
    consumer = transport.consumer(None)
    await consumer.start()
    tp = TopicPartition(topic, 0)
    end = (await consumer.end_offsets([tp]))[tp]
    consumer.assign([tp])
    consumer.seek(tp, 0)
    records = []
    while await consumer.position(tp) < end:
        records.extend((r.key, r.value) for r in (await consumer.poll(500)).get(tp, []))
    await consumer.stop()
    return records


def _json(value: dict) -> bytes:
    import orjson

    return orjson.dumps(value)


if __name__ == "__main__":
    asyncio.run(main())
