"""Orders enriched with customers and products: stream-table, global table and table-table joins.

- customers.left_join(tiers): a customer profile table that changes whenever a customer or
  their loyalty tier changes (a table-table join; a deleted customer becomes a tombstone);
- orders.join(products, ...): each order looks its product up in a global table, by a key
  computed from the order (no co-partitioning needed);
- .left_join(customers, ...): each priced order looks its customer up (a stream-table join on
  the customer id, which keys both topics; the customers table is restored in full from its
  topic before any order is processed).

It creates its topics, produces sample data, runs a worker in this process until every order
is enriched, prints the results from the output topics, and exits.

    python examples/orders_enriched.py                                  # in-process broker
    STREAMS_BROKERS=127.0.0.1:9092 python examples/orders_enriched.py   # the same app on Kafka
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid

import orjson

from streams import App
from streams.partitioner import partition_for
from streams.transport import OutRecord, TopicPartition, TopicSpec

RUN = uuid.uuid4().hex[:8]
CUSTOMERS, TIERS, PRODUCTS = f"customers-{RUN}", f"tiers-{RUN}", f"products-{RUN}"
ORDERS, ENRICHED, PROFILES = f"orders-{RUN}", f"orders-enriched-{RUN}", f"customer-profiles-{RUN}"
PARTITIONS = 2  # orders, customers and tiers are all keyed by customer id: co-partitioned

app = App(f"orders-enriched-{RUN}", brokers="memory://orders-enriched", commit_interval=0.2,
          state_dir=tempfile.mkdtemp(prefix="streams-orders-enriched-"))

customers = app.table(CUSTOMERS, name="customers")
tiers = app.table(TIERS, name="tiers")
products = app.global_table(PRODUCTS, name="products")

profiles = customers.left_join(tiers, lambda customer, tier: {**customer, "tier": tier or "standard"},
                               name="profiles")
profiles.to(PROFILES)

orders = app.stream(ORDERS)
priced = orders.join(products, lambda customer_id, order: order["sku"],
                     lambda order, product: {**order, "total": order["qty"] * product["price"]})
enriched = priced.left_join(customers, lambda order, customer: {**order, "customer": customer}, name="enrich")
enriched.to(ENRICHED)

SAMPLE_CUSTOMERS = {"c1": {"name": "Ada", "city": "Oslo"}, "c2": {"name": "Bo", "city": "Lyon"},
                    "c3": {"name": "Cyd", "city": "Pisa"}}
SAMPLE_TIERS = {"c1": "gold", "c3": "silver"}
SAMPLE_PRODUCTS = {"apple": {"price": 2}, "pear": {"price": 3}}
SAMPLE_ORDERS = [("c1", {"id": 1, "sku": "apple", "qty": 5}), ("c2", {"id": 2, "sku": "pear", "qty": 1}),
                 ("c3", {"id": 3, "sku": "plum", "qty": 9}),  # no such product: the inner join drops it
                 ("c4", {"id": 4, "sku": "pear", "qty": 2}),  # no such customer: the left join keeps it
                 ("c3", {"id": 5, "sku": "apple", "qty": 1})]


def record(topic: str, key: str, value: object) -> OutRecord:
    raw_key = key.encode()
    return OutRecord(topic, partition_for(raw_key, PARTITIONS), raw_key, orjson.dumps(value), None, ())


async def main() -> None:
    transport = app.transport()
    admin = transport.admin()
    await admin.start()
    compacted = {"cleanup.policy": "compact"}
    await admin.create_topics([TopicSpec(CUSTOMERS, PARTITIONS, config=compacted),
                               TopicSpec(TIERS, PARTITIONS, config=compacted),
                               TopicSpec(PRODUCTS, 1, config=compacted),
                               TopicSpec(ORDERS, PARTITIONS), TopicSpec(ENRICHED, PARTITIONS),
                               TopicSpec(PROFILES, PARTITIONS)])
    producer = transport.producer()
    await producer.start()
    await producer.send_many([record(CUSTOMERS, k, v) for k, v in SAMPLE_CUSTOMERS.items()]
                             + [record(TIERS, k, v) for k, v in SAMPLE_TIERS.items()]
                             + [record(PRODUCTS, k, v)._replace(partition=0) for k, v in SAMPLE_PRODUCTS.items()]
                             + [record(ORDERS, k, v) for k, v in SAMPLE_ORDERS])
    await producer.flush()

    worker = app.create_worker(transport)
    runner = asyncio.create_task(worker.run())
    await worker.wait_started()
    expected_orders = 4
    while not runner.done() and len(await read_all(transport, ENRICHED)) < expected_orders:
        await asyncio.sleep(0.2)
    # The profile table follows its inputs while the worker runs: Bo moves up, Cyd leaves.
    await producer.send_many([record(TIERS, "c2", "gold"), record(CUSTOMERS, "c3", None)])
    await producer.flush()
    await producer.stop()
    while not runner.done() and len(await read_all(transport, PROFILES)) < 7:  # 5 updates, then these 2
        await asyncio.sleep(0.2)
    print("products in the global table:", dict(app.store("products").items()))
    worker.stop()
    await runner  # raises what stopped the worker, if anything did

    print(f"enriched orders on {app.config.brokers}:")
    results = {}
    for key, order in await read_all(transport, ENRICHED):
        results[order["id"]] = (key, order)
        customer = order["customer"] or {"name": "?", "city": "?"}
        print(f"  order {order['id']} by {key} ({customer['name']} in {customer['city']}): "
              f"{order['qty']} x {order['sku']} = {order['total']}")
    assert sorted(results) == [1, 2, 4, 5]
    assert results[1][1]["customer"] == {"name": "Ada", "city": "Oslo"}
    assert results[4][1]["customer"] is None and results[5][1]["total"] == 2
    profiles_now = {}
    for key, profile in await read_all(transport, PROFILES):
        if profile is None:
            profiles_now.pop(key, None)
        else:
            profiles_now[key] = profile
    print("customer profiles now:", profiles_now)
    assert profiles_now == {"c1": {"name": "Ada", "city": "Oslo", "tier": "gold"},
                            "c2": {"name": "Bo", "city": "Lyon", "tier": "gold"}}
    await admin.delete_topics([CUSTOMERS, TIERS, PRODUCTS, ORDERS, ENRICHED, PROFILES])
    await admin.stop()


async def read_all(transport, topic: str) -> list[tuple[str, object]]:
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
            found.extend((r.key.decode(), None if r.value is None else orjson.loads(r.value)) for r in records)
    await consumer.stop()
    return found


if __name__ == "__main__":
    asyncio.run(main())
