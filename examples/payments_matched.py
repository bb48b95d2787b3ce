"""Payments matched to orders within ten minutes: a windowed stream-stream left join.

Every order gets exactly one line in "order-payments": the payment that arrived within ten
minutes of it, or, once its ten minutes (plus one minute of grace for stragglers) have passed
in event time, a line saying it is unpaid.  A payment that comes later does not match, and an
unpaid order is never reported before its window has closed.

It creates its topics, produces orders and payments with event times, runs a worker in this
process until every order has its line, prints them, and exits.

    python examples/payments_matched.py                                  # in-process broker
    STREAMS_BROKERS=127.0.0.1:9092 python examples/payments_matched.py   # the same app on Kafka
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
import time
import uuid
from datetime import timedelta

import orjson

from streams import App
from streams.partitioner import partition_for
from streams.transport import OutRecord, TopicPartition, TopicSpec
from streams.windows import JoinWindows

RUN = uuid.uuid4().hex[:8]
ORDERS, PAYMENTS, MATCHED = f"orders-{RUN}", f"payments-{RUN}", f"order-payments-{RUN}"
PARTITIONS = 2  # both topics keyed by order id: co-partitioned
MINUTE = 60_000

app = App(f"payments-matched-{RUN}", brokers="memory://payments-matched", commit_interval=0.2,
          state_dir=tempfile.mkdtemp(prefix="streams-payments-matched-"))

orders = app.stream(ORDERS)
payments = app.stream(PAYMENTS)
within_ten_minutes = JoinWindows(before=0, after=timedelta(minutes=10), grace=timedelta(minutes=1))
matched = orders.left_join(
    payments,
    lambda order, payment: {**order, "paid": payment is not None, "paid_by": payment and payment["method"]},
    window=within_ten_minutes, name="order-payment")
matched.to(MATCHED)


def record(topic: str, key: str, value: object, at: int) -> OutRecord:
    raw_key = key.encode()
    return OutRecord(topic, partition_for(raw_key, PARTITIONS), raw_key, orjson.dumps(value), at, ())


async def main() -> None:
    transport = app.transport()
    admin = transport.admin()
    await admin.start()
    await admin.create_topics([TopicSpec(ORDERS, PARTITIONS), TopicSpec(PAYMENTS, PARTITIONS),
                               TopicSpec(MATCHED, PARTITIONS)])
    start = (int(time.time() * 1000) // MINUTE - 120) * MINUTE  # two hours ago, in event time
    sample = [  # order id, minute ordered, minute paid (None: never)
        ("o1", 0, 3), ("o2", 1, 9), ("o3", 2, None), ("o4", 4, 25), ("o5", 5, 5), ("o6", 8, 17)]
    records = []
    for order_id, ordered, paid in sample:
        records.append(record(ORDERS, order_id, {"order": order_id, "amount": 10 * ordered + 5},
                              start + ordered * MINUTE))
        if paid is not None:
            records.append(record(PAYMENTS, order_id, {"method": "card"}, start + paid * MINUTE))
    # Event time moves on with later traffic: one more order an hour later on each partition
    # closes every window above (its own line comes only when its window closes in turn).
    for partition in range(PARTITIONS):
        key = next(k for k in (f"later-{n}" for n in itertools.count()) if partition_for(k.encode(), PARTITIONS)
                   == partition)
        records.append(record(ORDERS, key, {"order": key, "amount": 1}, start + 60 * MINUTE))
    records.sort(key=lambda r: r.timestamp)  # each topic in event-time order, as it would be written live
    producer = transport.producer()
    await producer.start()
    await producer.send_many(records)
    await producer.flush()
    await producer.stop()

    worker = app.create_worker(transport)
    runner = asyncio.create_task(worker.run())
    await worker.wait_started()
    while not runner.done() and len(await read_all(transport, MATCHED)) < len(sample):
        await asyncio.sleep(0.2)
    worker.stop()
    await runner  # raises what stopped the worker, if anything did

    lines = {key: value for key, value in await read_all(transport, MATCHED)}
    print(f"orders and their payments on {app.config.brokers}:")
    for order_id in sorted(lines):
        line = lines[order_id]
        print(f"  {order_id}: {line['amount']:>3} {'paid by ' + line['paid_by'] if line['paid'] else 'UNPAID'}")
    assert {k: v["paid"] for k, v in lines.items()} == {
        "o1": True, "o2": True, "o3": False, "o4": False, "o5": True, "o6": True}
    await admin.delete_topics([ORDERS, PAYMENTS, MATCHED])
    await admin.stop()


async def read_all(transport, topic: str) -> list[tuple[str, dict]]:
    """Every record of a topic, each partition from its start to its current end."""
    consumer = transport.consumer(None)
    await consumer.start()
    partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    consumer.assign(partitions)
    await consumer.seek_to_committed_or_reset(partitions)
    ends = await consumer.end_offsets(partitions)
    found = []
    while any([await consumer.position(tp) < ends[tp] for tp in partitions]):
        for records in (await consumer.poll(500)).values():
            found.extend((r.key.decode(), orjson.loads(r.value)) for r in records)
    await consumer.stop()
    return found


if __name__ == "__main__":
    asyncio.run(main())
