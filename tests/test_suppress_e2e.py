"""suppress() against the real broker under exactly-once: a windowed count's final results and a rate-limited
table, with updates buffered by one run and emitted by the next, after a restart with the same state
directory and after one with a wiped state directory (the buffer then comes back from its changelog)."""

from __future__ import annotations

import shutil
import time
from datetime import timedelta

from streams import App, until_time_limit, until_window_closes
from streams.windows import Tumbling, WindowedSerde
from tests.conftest import create_topics, unique_name
from tests.kafka_helpers import FAST_GROUP, decoded, produce, read_topic, running, wait_for

MINUTE = 60_000


def suppress_app(brokers: str, state_dir, app_id: str, t: dict) -> App:
    app = App(app_id, brokers=brokers, state_dir=state_dir, processing_guarantee="exactly_once",
              consumer_config=FAST_GROUP)
    clicks = app.stream(t["clicks"], value_serde="str").group_by_key().window(Tumbling(timedelta(minutes=1)))
    clicks = clicks.count(name="per-minute")
    clicks.suppress(until_window_closes(), name="final-clicks").to(t["final"], key_serde=WindowedSerde("str"))
    prices = app.table(t["prices"], name="prices")
    prices.suppress(until_time_limit(timedelta(minutes=1)), name="calm").to(t["calm"])
    return app


def windows_of(records) -> list[tuple]:
    serde = WindowedSerde("str")
    return sorted((serde.deserialize(r.key).key, serde.deserialize(r.key).start, int(r.value)) for r in records)


async def test_suppressed_results_survive_restarts_once_each(brokers, tmp_path):
    t = {n: unique_name(n) for n in ("clicks", "prices", "final", "calm")}
    await create_topics(brokers, {t["clicks"]: 2, t["prices"]: 1, t["final"]: 1, t["calm"]: 1})
    app_id = unique_name("suppress")
    base = (int(time.time() * 1000) - 3_600_000) // MINUTE * MINUTE
    await produce(brokers, t["clicks"], [("u1", "c", base + 1), ("u2", "c", base + 2), ("u1", "c", base + 3)])
    await produce(brokers, t["prices"], [("p", 1, base), ("p", 2, base + 10), ("q", 7, base + 20)])
    app = suppress_app(brokers, tmp_path / "s", app_id, t)
    async with running(app) as worker:
        await wait_for(lambda: worker.metrics.get("records_processed") >= 6)
    assert await read_topic(brokers, t["final"], expected=None, timeout=3) == []  # nothing is due yet

    # The same state dir: later clicks close the first minute; a later price of p makes p due (and is its latest).
    await produce(brokers, t["clicks"], [("u1", "c", base + MINUTE + 1), ("u2", "c", base + MINUTE + 2)])
    await produce(brokers, t["prices"], [("p", 3, base + MINUTE + 5)])
    app = suppress_app(brokers, tmp_path / "s", app_id, t)
    async with running(app):
        finals = await read_topic(brokers, t["final"], expected=2)
        calm = await read_topic(brokers, t["calm"], expected=1)
    assert windows_of(finals) == [("u1", base, 2), ("u2", base, 1)]
    assert [(k, v, r.timestamp) for (k, v), r in zip(decoded(calm), calm, strict=True)] == [
        ("p", 3, base + MINUTE + 5)]

    shutil.rmtree(tmp_path / "s")  # wiped: the buffers (minute 2, q=7) come back from their changelogs
    await produce(brokers, t["clicks"], [("u1", "c", base + 3 * MINUTE), ("u2", "c", base + 3 * MINUTE)])
    await produce(brokers, t["prices"], [("r", 1, base + 3 * MINUTE)])
    app = suppress_app(brokers, tmp_path / "s", app_id, t)
    async with running(app) as worker:
        finals = await read_topic(brokers, t["final"], expected=4)
        calm = await read_topic(brokers, t["calm"], expected=2)
        restored = {r.store for r in worker.restore_results if r.restored}
    assert {"final-clicks-store", "calm-store"} <= restored
    assert windows_of(finals) == [("u1", base, 2), ("u1", base + MINUTE, 1), ("u2", base, 1),
                                  ("u2", base + MINUTE, 1)]
    assert [(k, v, r.timestamp) for (k, v), r in zip(decoded(calm), calm, strict=True)] == [
        ("p", 3, base + MINUTE + 5), ("q", 7, base + 20)]
