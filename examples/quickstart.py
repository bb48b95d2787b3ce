"""Quickstart: count page views per user and flag heavy users, end to end.

The topics are declared, so the worker creates them.  The script starts a
worker in this process, sends sample click events, waits until every view is
counted, prints the per-user counts from the state store and the alerts from
their topic, and exits.

    python examples/quickstart.py                                    # in-process broker, no Kafka
    STREAMS_BROKERS=127.0.0.1:9092 python examples/quickstart.py     # the same app on Kafka
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import uuid

from streams import App

RUN = uuid.uuid4().hex[:8]  # fresh topics and consumer group on every run, so reruns on Kafka start clean
USERS = ["ada", "bo", "cyd", "dee"]
EVENTS = 2_000

app = App(f"quickstart-{RUN}", brokers="memory://quickstart",
          state_dir=tempfile.mkdtemp(prefix="streams-quickstart-"), commit_interval=0.5)

clicks = app.topic(f"quickstart-clicks-{RUN}", partitions=4)
alerts = app.topic(f"quickstart-alerts-{RUN}", partitions=1)

views = app.stream(clicks).filter(lambda key, click: click["kind"] == "view")
per_user = views.group_by(lambda key, click: click["user"]).count(name="views-per-user")
per_user.to_stream().filter(lambda user, n: n % 250 == 0).map_values(lambda n: f"{n} views").to(alerts)


async def main() -> None:
    rng = random.Random(7)
    events = [{"user": rng.choice(USERS), "kind": rng.choice(["view", "view", "view", "buy"])}
              for _ in range(EVENTS)]
    expected = {u: sum(1 for e in events if e["user"] == u and e["kind"] == "view") for u in USERS}

    async with app.running() as run:
        for n, event in enumerate(events):
            await run.send(clicks, f"click-{n}", event)
        await run.until(lambda: dict(app.store("views-per-user").items()) == expected, timeout=60)
        counts = dict(app.store("views-per-user").items())
        heavy = await run.read(alerts, count=sum(n // 250 for n in expected.values()), timeout=30)

    print(f"processed {EVENTS} click events on {app.config.brokers}; views per user:")
    for user, count in sorted(counts.items()):
        print(f"  {user:>4}: {count}")
    for alert in heavy:
        print(f"  alert: {alert.key} reached {alert.value}")


if __name__ == "__main__":
    asyncio.run(main())
