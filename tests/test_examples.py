"""The examples in examples/ run as documented.

The worker-style examples (clicks pipeline, tables, agents and timers) are tested
with the TestDriver and with a worker on a fresh in-process broker, through the
public API their docs show: their topics are declared, so the worker creates them.
The self-contained ones run as scripts on the in-process broker (the wordcount and
windowed ones on Kafka too, in test_embedded_apps.py and test_windows_e2e.py).
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import pytest

from streams import TestDriver
from tests.process_helpers import REPO


def load(name: str, brokers: str | None = None, state_dir=None):
    module = importlib.reload(importlib.import_module(f"examples.{name}"))
    if brokers is not None:
        module.app.configure(brokers=brokers, state_dir=state_dir)
    return module


def test_clicks_pipeline_in_the_driver():
    module = load("clicks_pipeline")
    with TestDriver(module.app) as driver:
        driver.pipe_input(module.clicks_topic, "ada", {"user": "ada", "page": "/home", "ms": 1500, "device": "mobile"})
        driver.pipe_input(module.clicks_topic, "bo", {"user": "bo", "page": "/cart", "ms": 80})
        driver.pipe_raw(module.clicks_topic, b"cy", b"not json")
        assert driver.read_key_values(module.slow_clicks) == [("/home", 1500)]
        [(user, click)] = driver.read_key_values(module.mobile_clicks)
        assert user == "ada" and click["mobile"] is True
        assert [k for k, _ in driver.read_key_values(module.desktop_clicks)] == ["bo"]
        [dead] = driver.read_output("clicks-pipeline-dlq", value_serde="bytes")
        assert (dead.key, dead.value) == ("cy", b"not json")


async def test_clicks_pipeline_on_a_worker(embedded_brokers, tmp_path):
    module = load("clicks_pipeline", embedded_brokers, tmp_path)
    async with module.app.running() as run:
        await run.send(module.clicks_topic, "ada", {"user": "ada", "page": "/home", "ms": 1500})
        await run.send(module.clicks_topic, "cy", "no ms field")
        [slow] = await run.read(module.slow_clicks, count=1)
        [dead] = await run.read("clicks-pipeline-dlq", count=1)
    assert (slow.key, slow.value) == ("/home", 1500)
    assert dead.key == "cy" and dict(dead.headers)["streams.error.type"] == b"TypeError"


async def test_tables_example(embedded_brokers, tmp_path):
    module = load("tables", embedded_brokers, tmp_path)
    app = module.app
    async with app.running() as run:
        for key, payment in [("p1", {"account": "a1", "amount": 10.0}), ("p2", {"account": "a1", "amount": 5.5}),
                             ("p3", {"account": "a2", "amount": 1.0})]:
            await run.send(module.payments_topic, key, payment)
        await run.send(module.accounts_topic, "a1", {"name": "Ada"})
        await run.until(lambda: dict(app.store("totals").items()) == {"a1": 15.5, "a2": 1.0}
                        and app.store("holders").get("a1") == {"name": "Ada"}
                        and app.store("payment-counts").get("a1") == 2)
        totals = await run.read(module.totals_topic, count=3)
    assert sorted((r.key, r.value) for r in totals) == [("a1", 10.0), ("a1", 15.5), ("a2", 1.0)]


def test_agents_and_timers_in_the_driver():
    module = load("agents_and_timers")
    with TestDriver(module.app) as driver:
        driver.pipe_input(module.orders, "c1", {"amount": 600.0})
        driver.pipe_input(module.orders, "c1", {"amount": 1500.0})
        driver.pipe_input(module.orders, "c2", {"amount": 5.0})
        assert driver.read_key_values(module.reviews) == [
            ("c1", {"customer": "c1", "reason": "large amount", "amount": 1500.0, "customer total": 2100.0})]
        assert dict(driver.store("customer-totals").items()) == {"c1": 2100.0, "c2": 5.0}


async def test_agents_and_timers_on_a_worker(embedded_brokers, tmp_path):
    module = load("agents_and_timers", embedded_brokers, tmp_path)
    app = module.app
    async with app.running() as run:
        [announcement] = await run.read(module.announcements, from_beginning=True)
        await run.send(module.orders, "c1", {"amount": 50.0})
        await run.send(module.orders, "c1", {"amount": 5000.0})
        [review] = await run.read(module.reviews, count=1)
        await run.until(lambda: app.store("customer-totals").get("c1") == 5050.0)
        await module.report()  # the timer's query works while the worker runs
    assert announcement.value == "an orders worker is starting"
    assert review.key == "c1" and review.value["customer total"] == 5050.0


@pytest.mark.parametrize("script, expected", [
    ("quickstart.py", "alert: ada reached 250 views"),
    ("orders_enriched.py", "order 4 by c4 (? in ?): 2 x pear = 6"),
    ("payments_matched.py", "o3:  25 UNPAID"),
    ("windowed_counts.py", "401 views over 20 minutes; 2 late drops"),
])
def test_self_contained_examples_run_on_the_in_process_broker(script, expected):
    env = {k: v for k, v in os.environ.items() if k != "STREAMS_BROKERS"}
    done = subprocess.run([sys.executable, f"examples/{script}"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert expected in done.stdout


def test_examples_describe_from_the_command_line():
    for name in ("clicks_pipeline", "agents_and_timers", "tables", "dedupe_processor"):
        result = subprocess.run([sys.executable, f"examples/{name}.py", "describe"], cwd=REPO,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and result.stdout.startswith("Topologies:"), result.stderr
