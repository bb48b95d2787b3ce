"""Payments matched to orders within ten minutes: a windowed stream-stream left join.

Every order gets exactly one line in "order-payments": the payment that arrived within ten
minutes of it, or, once its ten minutes (plus one minute of grace for stragglers) have passed
in event time, a line saying it is unpaid.  The window is JoinWindows(..., late="drop"): a
payment that arrives after the order's window has closed does not match, so an unpaid line is
final.  (With the default, Kafka Streams' rules, such a payment would still match the order
the join keeps, after its unpaid line.)

It sends orders and payments with their event times, starts a worker in this
process, waits until every order has its line, prints them, and exits.

    python examples/payments_matched.py                                  # in-process broker
    STREAMS_BROKERS=127.0.0.1:9092 python examples/payments_matched.py   # the same app on Kafka
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from datetime import timedelta

from streams import App, JoinWindows

RUN = uuid.uuid4().hex[:8]
PARTITIONS = 2  # both topics keyed by order id: co-partitioned
MINUTE = 60_000

app = App(f"payments-matched-{RUN}", brokers="memory://payments-matched", commit_interval=0.2,
          state_dir=tempfile.mkdtemp(prefix="streams-payments-matched-"))

orders_topic = app.topic(f"orders-{RUN}", partitions=PARTITIONS)
payments_topic = app.topic(f"payments-{RUN}", partitions=PARTITIONS)
matched_topic = app.topic(f"order-payments-{RUN}", partitions=PARTITIONS)

orders = app.stream(orders_topic)
payments = app.stream(payments_topic)
within_ten_minutes = JoinWindows(before=0, after=timedelta(minutes=10), grace=timedelta(minutes=1), late="drop")
matched = orders.left_join(
    payments,
    lambda order, payment: {**order, "paid": payment is not None, "paid_by": payment and payment["method"]},
    window=within_ten_minutes, name="order-payment")
matched.to(matched_topic)


async def main() -> None:
    start = (int(time.time() * 1000) // MINUTE - 120) * MINUTE  # two hours ago, in event time
    sample = [  # order id, minute ordered, minute paid (None: never)
        ("o1", 0, 3), ("o2", 1, 9), ("o3", 2, None), ("o4", 4, 25), ("o5", 5, 5), ("o6", 8, 17)]
    records = []
    for order_id, ordered, paid in sample:
        records.append((orders_topic, order_id, {"order": order_id, "amount": 10 * ordered + 5},
                        start + ordered * MINUTE))
        if paid is not None:
            records.append((payments_topic, order_id, {"method": "card"}, start + paid * MINUTE))
    # Event time moves on with later traffic: one more order an hour later on each partition (these two
    # keys hash to the two partitions) closes every window above; its own line comes only when its window
    # closes in turn.
    for key in ("later-0", "later-1"):
        records.append((orders_topic, key, {"order": key, "amount": 1}, start + 60 * MINUTE))
    records.sort(key=lambda r: r[3])  # each topic in event-time order, as it would be written live

    async with app.running() as run:
        for topic, key, value, timestamp in records:
            await run.send(topic, key, value, timestamp=timestamp)
        lines = {r.key: r.value for r in await run.read(matched_topic, count=len(sample), timeout=60)}

    print(f"orders and their payments on {app.config.brokers}:")
    for order_id in sorted(lines):
        line = lines[order_id]
        print(f"  {order_id}: {line['amount']:>3} {'paid by ' + line['paid_by'] if line['paid'] else 'UNPAID'}")
    assert {k: v["paid"] for k, v in lines.items()} == {
        "o1": True, "o2": True, "o3": False, "o4": False, "o5": True, "o6": True}


if __name__ == "__main__":
    asyncio.run(main())
