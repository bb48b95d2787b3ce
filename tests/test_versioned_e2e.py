"""A versioned table against the real broker: out-of-order rate updates land in the history, orders join the
rate valid at their own time, and after a restart with a wiped state directory the history comes back from
its changelog, so late orders still find the rates of their time."""

from __future__ import annotations

import shutil
import time
from datetime import timedelta

from streams import App
from tests.conftest import create_topics, unique_name
from tests.kafka_helpers import FAST_GROUP, decoded, produce, read_topic, running, wait_for

MINUTE = 60_000


def rates_app(brokers: str, state_dir, app_id: str, t: dict) -> App:
    app = App(app_id, brokers=brokers, state_dir=state_dir, commit_interval=0.2, consumer_config=FAST_GROUP)
    rates = app.table(t["rates"], name="rates", versioned=timedelta(hours=1))
    app.stream(t["orders"], value_serde="str").left_join(rates, lambda order, rate: [order, rate]).to(t["out"])
    return app


async def test_versioned_table_history_across_a_wiped_restart(brokers, tmp_path):
    t = {n: unique_name(n) for n in ("rates", "orders", "out")}
    await create_topics(brokers, {t["rates"]: 2, t["orders"]: 2, t["out"]: 2})
    app_id, base = unique_name("versioned"), int(time.time() * 1000) - 3_600_000
    await produce(brokers, t["rates"], [("EUR", 1.10, base), ("EUR", 1.20, base + 10 * MINUTE),
                                        ("EUR", 1.15, base + 5 * MINUTE), ("USD", 0.90, base)])
    app = rates_app(brokers, tmp_path / "s", app_id, t)
    async with running(app):
        await wait_for(lambda: len(app.store("rates-versions").versions("EUR")) == 3
                       and app.store("rates-versions").versions("USD"))
        assert app.store("rates").get("EUR") == 1.20  # the newest by time, though not the last written
        history = app.store("rates-versions")
        assert history.get("EUR") == 1.20 and history.get("EUR", as_of=base + 6 * MINUTE) == 1.15
        assert dict(history.items()) == {"EUR": 1.20, "USD": 0.90}
        await produce(brokers, t["orders"], [("EUR", "o1", base + 7 * MINUTE), ("EUR", "o2", base + 12 * MINUTE),
                                             ("EUR", "o3", base + 2 * MINUTE), ("USD", "o4", base - MINUTE)])
        out = await read_topic(brokers, t["out"], expected=4)
    assert sorted(v for _, v in decoded(out)) == [["o1", 1.15], ["o2", 1.2], ["o3", 1.1], ["o4", None]]

    shutil.rmtree(tmp_path / "s")
    await produce(brokers, t["rates"], [("EUR", 1.30, base + 20 * MINUTE)])
    app = rates_app(brokers, tmp_path / "s", app_id, t)
    async with running(app) as worker:
        await wait_for(lambda: app.store("rates").get("EUR") == 1.30)
        restored = {r.store for r in worker.restore_results if r.restored}
        await produce(brokers, t["orders"], [("EUR", "o5", base + 6 * MINUTE), ("EUR", "o6", base + 25 * MINUTE)])
        out = await read_topic(brokers, t["out"], expected=6)
    assert {"rates", "rates-versions"} <= restored
    assert sorted(v for _, v in decoded(out))[-2:] == [["o5", 1.15], ["o6", 1.3]]
