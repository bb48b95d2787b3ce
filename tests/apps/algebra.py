"""The table algebra in one exactly-once app, for kill -9 tests; topics named by environment variables.

- accounts (TEST_ACCOUNTS) is a table of {"owner", "v"}, grouped by owner into totals with an adder and a
  subtractor ({"n", "sum", "ops"}: ops counts adder and subtractor calls) written to TEST_TOTALS, and the
  same totals rate-limited by suppress() to TEST_CALM;
- owners (TEST_OWNERS) is a versioned table; accounts join it by foreign key (TEST_NAMED), and payments
  (TEST_PAYMENTS, keyed by owner) left-join it as of their time (TEST_PAID);
- orders (TEST_ORDERS) left-join shipments (TEST_SHIPMENTS) within a second, closing windows on the wall
  clock (TEST_SHIPPED).
"""

import os
from datetime import timedelta

from streams import App, until_time_limit
from streams.windows import JoinWindows

env = os.environ
app = App(env["TEST_APP_ID"], state_dir=env.get("TEST_STATE_DIR", ".state"), processing_guarantee="exactly_once",
          commit_interval=0.2, consumer_config={"session_timeout_ms": 6000, "heartbeat_interval_ms": 500})
accounts = app.table(env["TEST_ACCOUNTS"], name="accounts")
owners = app.table(env["TEST_OWNERS"], name="owners", versioned=timedelta(hours=1))
totals = accounts.group_by(lambda key, account: (account["owner"], account["v"]), name="by-owner").aggregate(
    lambda: {"n": 0, "sum": 0, "ops": 0},
    lambda owner, v, agg: {"n": agg["n"] + 1, "sum": agg["sum"] + v, "ops": agg["ops"] + 1},
    lambda owner, v, agg: {"n": agg["n"] - 1, "sum": agg["sum"] - v, "ops": agg["ops"] + 1},
    name="totals")
totals.to(env["TEST_TOTALS"])
totals.suppress(until_time_limit(timedelta(milliseconds=200), max_records=10, when_full="emit_early"),
                name="calm").to(env["TEST_CALM"])
accounts.left_join(owners, lambda account, owner: [account["v"], owner], foreign_key=lambda account: account["owner"],
                   name="named").to(env["TEST_NAMED"])
app.stream(env["TEST_PAYMENTS"]).left_join(owners, lambda payment, owner: [payment, owner], name="paid").to(
    env["TEST_PAID"])
app.stream(env["TEST_ORDERS"]).left_join(app.stream(env["TEST_SHIPMENTS"]), lambda order, shipment: [order, shipment],
                                         window=JoinWindows(0, 1000), name="shipped",
                                         close_on_wall_clock=True).to(env["TEST_SHIPPED"])
