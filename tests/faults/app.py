"""The app under fault injection, run as `python -m streams worker tests.faults.app:app`.

Its outputs let tests/faults/checker.py find every duplicate and every loss:

- echo: each input becomes one output {"id", "pid"}; an id seen twice is a
  duplicate, an id never seen a loss, and the pid says which worker wrote it;
- totals: through a repartition by user, a changelogged aggregate keeps per user
  the count and the sum of the unique input ids; each user's updates must count
  1, 2, 3, ... with no repeat and no gap;
- windows (when FAULTS_WINDOWS names a topic): the same per user and 10 s
  tumbling window of event time, keyed "user@window-start".

Environment: FAULTS_APP_ID, FAULTS_IN, FAULTS_ECHO, FAULTS_TOTALS, FAULTS_WINDOWS,
FAULTS_GUARANTEE, FAULTS_STANDBYS, FAULTS_STATE_DIR, FAULTS_COMMIT_INTERVAL,
FAULTS_REQUEST_TIMEOUT_MS (the producers'), and FAULTS_DISK_FULL_FLAG: where a
disk cannot be filled for real (no tmpfs mount without root), the state stores'
writes fail with "No space left on device" while the file it names exists.
"""

import os
from datetime import timedelta

from streams import App
from streams.windows import Tumbling

WINDOW = timedelta(seconds=10)
GRACE = timedelta(minutes=30)  # replays after faults reorder event time; no record may be late

app = App(
    os.environ["FAULTS_APP_ID"],
    state_dir=os.environ.get("FAULTS_STATE_DIR", ".state"),
    commit_interval=float(os.environ.get("FAULTS_COMMIT_INTERVAL", "0.5")),
    processing_guarantee=os.environ.get("FAULTS_GUARANTEE", "exactly_once_v2"),
    num_standby_replicas=int(os.environ.get("FAULTS_STANDBYS", "0")),
    consumer_config={"session_timeout_ms": 6000, "heartbeat_interval_ms": 500},
    producer_config={"request_timeout_ms": int(os.environ.get("FAULTS_REQUEST_TIMEOUT_MS", "40000"))},
)
pid = os.getpid()
if os.environ.get("FAULTS_DISK_FULL_FLAG"):
    from tests.faults.disk import fail_store_writes_while

    fail_store_writes_while(os.environ["FAULTS_DISK_FULL_FLAG"])


def add(user, value, totals):
    return {"count": totals["count"] + 1, "sum": totals["sum"] + value["id"]}


source = app.stream(os.environ["FAULTS_IN"])
source.map_values(lambda value: {"id": value["id"], "pid": pid}, name="echo").to(os.environ["FAULTS_ECHO"])
by_user = source.group_by(lambda key, value: value["user"], name="by-user")
by_user.aggregate(lambda: {"count": 0, "sum": 0}, add, name="totals").to_stream().to(os.environ["FAULTS_TOTALS"])
if os.environ.get("FAULTS_WINDOWS"):
    by_user.window(Tumbling(WINDOW, grace=GRACE)).aggregate(
        lambda: {"count": 0, "sum": 0}, add, name="windowed",
    ).to_stream().map(lambda window, totals: (f"{window.key}@{window.start}", totals), name="window-key").to(
        os.environ["FAULTS_WINDOWS"], key_serde="str", value_serde="json"
    )
