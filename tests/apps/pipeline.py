"""An app for worker-process tests, configured by environment variables.

TEST_APP_ID, TEST_IN, TEST_OUT name the app and topics; TEST_MODE picks the
topology: "copy" (map_values tags the value with this process's pid) or
"count" (group by the value's "user" and count; "counts-hourly" adds a count per
user and hour) or "ids" (count, and collect the input ids per user, so that a
lost or duplicated input shows) or "sumcount" (count and sum of the unique input
ids per user).
"""

import os

from streams import App, Tumbling

app = App(
    os.environ["TEST_APP_ID"],
    state_dir=os.environ.get("TEST_STATE_DIR", ".state"),
    commit_interval=float(os.environ.get("TEST_COMMIT_INTERVAL", "0.5")),
    processing_guarantee=os.environ.get("TEST_GUARANTEE", "at_least_once"),
    num_standby_replicas=int(os.environ.get("TEST_STANDBYS", "0")),
    consumer_config={"session_timeout_ms": 6000, "heartbeat_interval_ms": 500},
)
mode = os.environ.get("TEST_MODE", "copy")
source = app.stream(os.environ["TEST_IN"])
if mode == "copy":
    pid = os.getpid()
    source.map_values(lambda v: {**v, "worker": pid}).to(os.environ["TEST_OUT"])
elif mode in ("count", "counts-hourly"):
    by_user = source.group_by(lambda k, v: v["user"], name="by-user")
    by_user.count(name="counts").to_stream().to(os.environ["TEST_OUT"])
    if mode == "counts-hourly":
        by_user.window(Tumbling(3_600_000)).count(name="hourly")
elif mode == "ids":
    grouped = source.group_by(lambda k, v: v["user"], name="by-user")
    grouped.count(name="counts")
    grouped.aggregate(list, lambda user, v, ids: [*ids, v["id"]], name="ids").to_stream().to(os.environ["TEST_OUT"])
elif mode == "sumcount":
    source.group_by(lambda k, v: v["user"], name="by-user").aggregate(
        lambda: {"count": 0, "sum": 0},
        lambda user, v, agg: {"count": agg["count"] + 1, "sum": agg["sum"] + v["id"]},
        name="totals",
    ).to_stream().to(os.environ["TEST_OUT"])
else:
    raise SystemExit(f"unknown TEST_MODE {mode}")
