"""Faust-style agents with a table, sends, timers and crontabs.

    python scripts/kafka start
    python examples/agents_and_timers.py worker
    streams send examples.agents_and_timers:app orders --key c1 --value '{"amount": 1500}'
    streams tail examples.agents_and_timers:app order-reviews --follow

Orders arrive keyed by customer.  The agent keeps each customer's running total in
an agent table (a RocksDB store with a changelog, partitioned like the orders, so
each task holds its own customers), and sends the orders worth reviewing to
"order-reviews".  A start-up task announces the worker, a timer reports the
largest totals every 10 seconds by querying the table, and a crontab entry runs
every five minutes, on the group leader only.
"""

import logging

from streams import App

log = logging.getLogger("orders")
app = App("orders-agent")

orders = app.topic("orders", partitions=4)
reviews = app.topic("order-reviews", partitions=4)
announcements = app.topic("order-announcements", partitions=1)
totals = app.agent_table("customer-totals", default=float)


@app.agent(orders)
async def review(stream):
    async for customer, order in stream.items():
        totals[customer] += order["amount"]
        if order["amount"] > 1000:
            await reviews.send(customer, {"customer": customer, "reason": "large amount", "amount": order["amount"],
                                          "customer total": totals[customer]})


@app.timer(10.0)
async def report():
    top = sorted(app.store("customer-totals").items(), key=lambda kv: -kv[1])[:3]
    log.info("largest totals: %s", ", ".join(f"{customer} {total:.2f}" for customer, total in top))


@app.crontab("*/5 * * * *", timezone="Europe/Paris", on_leader=True)
async def every_five_minutes():
    log.info("five-minute mark: %d customers so far", len(dict(app.store("customer-totals").items())))


@app.task
async def on_start():
    await announcements.send("worker", "an orders worker is starting")


if __name__ == "__main__":
    app.main()
