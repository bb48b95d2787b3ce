"""Orders enriched with customers and products: stream-table, global table and table-table joins.

- customers.left_join(tiers): a customer profile table that changes whenever a customer or
  their loyalty tier changes (a table-table join; a deleted customer becomes a tombstone);
- orders.join(products, ...): each order looks its product up in a global table, by a key
  computed from the order (no co-partitioning needed);
- .left_join(customers, ...): each priced order looks its customer up (a stream-table join on
  the customer id, which keys both topics).  The customers table is reference data, so it is
  preloaded: restored in full from its topic before any order is processed.  Without
  preload=True a table follows its topic in timestamp order with the orders, as in Kafka
  Streams, and an order meets only the customer rows written before it.

It sends sample customers, tiers, products and orders, starts a worker in this
process, waits until every order is enriched, changes a tier and deletes a
customer while it runs, prints the results from the output topics, and exits.

    python examples/orders_enriched.py                                  # in-process broker
    STREAMS_BROKERS=127.0.0.1:9092 python examples/orders_enriched.py   # the same app on Kafka
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid

from streams import App

RUN = uuid.uuid4().hex[:8]
PARTITIONS = 2  # orders, customers and tiers are all keyed by customer id: co-partitioned
COMPACTED = {"cleanup.policy": "compact"}

app = App(f"orders-enriched-{RUN}", brokers="memory://orders-enriched", commit_interval=0.2,
          state_dir=tempfile.mkdtemp(prefix="streams-orders-enriched-"))

customers_topic = app.topic(f"customers-{RUN}", partitions=PARTITIONS, config=COMPACTED)
tiers_topic = app.topic(f"tiers-{RUN}", partitions=PARTITIONS, config=COMPACTED)
products_topic = app.topic(f"products-{RUN}", partitions=1, config=COMPACTED)
orders_topic = app.topic(f"orders-{RUN}", partitions=PARTITIONS)
enriched_topic = app.topic(f"orders-enriched-{RUN}", partitions=PARTITIONS)
profiles_topic = app.topic(f"customer-profiles-{RUN}", partitions=PARTITIONS)

customers = app.table(customers_topic, name="customers", preload=True)
tiers = app.table(tiers_topic, name="tiers")
products = app.global_table(products_topic, name="products")

profiles = customers.left_join(tiers, lambda customer, tier: {**customer, "tier": tier or "standard"},
                               name="profiles")
profiles.to(profiles_topic)

orders = app.stream(orders_topic)
priced = orders.join(products, lambda customer_id, order: order["sku"],
                     lambda order, product: {**order, "total": order["qty"] * product["price"]})
enriched = priced.left_join(customers, lambda order, customer: {**order, "customer": customer}, name="enrich")
enriched.to(enriched_topic)

SAMPLE_CUSTOMERS = {"c1": {"name": "Ada", "city": "Oslo"}, "c2": {"name": "Bo", "city": "Lyon"},
                    "c3": {"name": "Cyd", "city": "Pisa"}}
SAMPLE_TIERS = {"c1": "gold", "c3": "silver"}
SAMPLE_PRODUCTS = {"apple": {"price": 2}, "pear": {"price": 3}}
SAMPLE_ORDERS = [("c1", {"id": 1, "sku": "apple", "qty": 5}), ("c2", {"id": 2, "sku": "pear", "qty": 1}),
                 ("c3", {"id": 3, "sku": "plum", "qty": 9}),  # no such product: the inner join drops it
                 ("c4", {"id": 4, "sku": "pear", "qty": 2}),  # no such customer: the left join keeps it
                 ("c3", {"id": 5, "sku": "apple", "qty": 1})]


async def main() -> None:
    # Sent before the worker starts: each table is restored in full from its topic before any order is processed.
    for topic, rows in ((customers_topic, SAMPLE_CUSTOMERS), (tiers_topic, SAMPLE_TIERS),
                        (products_topic, SAMPLE_PRODUCTS)):
        for key, value in rows.items():
            await topic.send(key, value)
    for key, order in SAMPLE_ORDERS:
        await orders_topic.send(key, order)

    async with app.running() as run:
        enriched_orders = await run.read(enriched_topic, count=4, timeout=60)
        profile_updates = await run.read(profiles_topic, count=5, timeout=60)
        # The profile table follows its inputs while the worker runs: Bo moves up, Cyd leaves.
        await run.send(tiers_topic, "c2", "gold")
        await run.send(customers_topic, "c3", None)
        profile_updates += await run.read(profiles_topic, count=2, timeout=60)
        print("products in the global table:", dict(app.store("products").items()))

    print(f"enriched orders on {app.config.brokers}:")
    results = {}
    for record in enriched_orders:
        order = record.value
        results[order["id"]] = order
        customer = order["customer"] or {"name": "?", "city": "?"}
        print(f"  order {order['id']} by {record.key} ({customer['name']} in {customer['city']}): "
              f"{order['qty']} x {order['sku']} = {order['total']}")
    assert sorted(results) == [1, 2, 4, 5]
    assert results[1]["customer"] == {"name": "Ada", "city": "Oslo"}
    assert results[4]["customer"] is None and results[5]["total"] == 2
    profiles_now = {}
    for record in profile_updates:
        if record.value is None:
            profiles_now.pop(record.key, None)
        else:
            profiles_now[record.key] = record.value
    print("customer profiles now:", profiles_now)
    assert profiles_now == {"c1": {"name": "Ada", "city": "Oslo", "tier": "gold"},
                            "c2": {"name": "Bo", "city": "Lyon", "tier": "gold"}}


if __name__ == "__main__":
    asyncio.run(main())
