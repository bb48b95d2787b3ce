"""Faust-style agents, timers and crontabs.

    python scripts/kafka start
    python examples/agents_and_timers.py worker

The agent reads orders, yields the ones worth reviewing to "order-reviews", and
keeps a running total; a timer reports the total every 10 seconds, and a crontab
entry runs every five minutes, on the group leader only.
"""

import logging

from streams import App

log = logging.getLogger("orders")
app = App("orders-agent")
totals = {"orders": 0, "amount": 0.0}


@app.agent("orders", sink="order-reviews")
async def review(stream):
    async for order_id, order in stream.items():
        totals["orders"] += 1
        totals["amount"] += order["amount"]
        if order["amount"] > 1000:
            yield {"order": order_id, "reason": "large amount", "amount": order["amount"]}


@app.timer(10.0)
async def report():
    log.info("seen %d orders worth %.2f", totals["orders"], totals["amount"])


@app.crontab("*/5 * * * *", timezone="Europe/Paris", on_leader=True)
def every_five_minutes():
    log.info("five-minute mark: %d orders so far", totals["orders"])


@app.task
async def on_start():
    log.info("orders agent starting")


if __name__ == "__main__":
    app.main()
