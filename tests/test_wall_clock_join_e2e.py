"""close_on_wall_clock against the real broker under exactly-once: an order that no payment follows, on a
partition that then stays quiet, gets its unmatched result after its window and grace of wall-clock time,
once, across a restart."""

from __future__ import annotations

import time

from streams import App
from streams.windows import JoinWindows
from tests.conftest import create_topics, unique_name
from tests.kafka_helpers import FAST_GROUP, decoded, produce, read_topic, running, wait_for


def payments_app(brokers: str, state_dir, app_id: str, t: dict) -> App:
    app = App(app_id, brokers=brokers, state_dir=state_dir, processing_guarantee="exactly_once",
              consumer_config=FAST_GROUP)
    orders, payments = app.stream(t["orders"], value_serde="str"), app.stream(t["payments"], value_serde="str")
    orders.left_join(payments, lambda order, payment: [order, payment], window=JoinWindows(0, 4000, grace=1000),
                     name="paid", close_on_wall_clock=True).to(t["out"])
    return app


async def test_unmatched_orders_on_a_quiet_partition_are_emitted_once_on_wall_clock(brokers, tmp_path):
    t = {n: unique_name(n) for n in ("orders", "payments", "out")}
    await create_topics(brokers, {t["orders"]: 1, t["payments"]: 1, t["out"]: 1})
    app_id, now = unique_name("wallclock"), int(time.time() * 1000)
    await produce(brokers, t["orders"], [("o1", "order1", now), ("o2", "order2", now + 1)])
    await produce(brokers, t["payments"], [("o1", "pay1", now + 1)])
    app = payments_app(brokers, tmp_path, app_id, t)
    async with running(app) as worker:
        await wait_for(lambda: worker.metrics.get("records_processed") >= 3)
    assert worker.metrics.get("wall_clock_unmatched") == 0  # stopped well within o2's 5 s
    app = payments_app(brokers, tmp_path, app_id, t)  # restarted: o2 is still waiting in the buffer
    async with running(app) as worker:
        await wait_for(lambda: worker.metrics.get("wall_clock_unmatched") >= 1, timeout=30)
        out = await read_topic(brokers, t["out"], expected=2)
    assert sorted(decoded(out)) == [("o1", ["order1", "pay1"]), ("o2", ["order2", None])]
    assert len(await read_topic(brokers, t["out"], expected=None, timeout=3)) == 2
