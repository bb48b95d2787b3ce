"""Stream.process(): a user's Processor with its own changelogged stores, on the TestDriver and the broker."""

from __future__ import annotations

import shutil

import pytest

from examples.dedupe_processor import HORIZON_MS, Dedupe
from examples.dedupe_processor import app as dedupe_app
from streams import App, Processor
from streams.testing import TestDriver
from tests.conftest import create_topics, unique_name
from tests.kafka_helpers import FAST_GROUP, decoded, produce, read_topic, running, wait_for


def test_example_forwards_first_sightings_and_punctuation_forgets_old_ids():
    with TestDriver(dedupe_app) as driver:
        for i, event_id in enumerate(["a", "b", "a", "c", "b"]):
            driver.pipe_input("payments", "k", {"id": event_id}, timestamp=1_000 + i)
        assert [v["id"] for _, v in driver.read_key_values("payments-unique")] == ["a", "b", "c"]
        assert sorted(key for key, _ in driver.store("seen-ids").items()) == [b"a", b"b", b"c"]
        driver.advance_wall_clock(1_000 + HORIZON_MS + 10)
        assert list(driver.store("seen-ids").items()) == []
        driver.pipe_input("payments", "k", {"id": "a"}, timestamp=HORIZON_MS * 2)
        assert [v["id"] for _, v in driver.read_key_values("payments-unique")] == ["a"]


def test_process_checks_its_factory():
    with pytest.raises(TypeError, match="callable that returns a Processor"):
        App("proc-check", brokers="memory://").stream("in").process(Dedupe(), stores=["s"])
    app = App("proc-check", brokers="memory://")
    app.stream("in").process(lambda: object()).to("out")
    with pytest.raises(TypeError, match="not a streams.Processor"):
        TestDriver(app)


def test_process_stores_are_changelogged_and_described():
    app = App("proc-describe", brokers="memory://")
    app.stream("in").process(Dedupe, stores=["seen-ids"]).to("out")
    topology = app.topology()
    assert topology.stores["seen-ids"].changelog_topic == "proc-describe-seen-ids-changelog"
    assert "seen-ids" in app.describe()


class Tagger(Processor):
    """Forwards values with the partition's running total kept in a store (checks restore on the broker)."""

    def __init__(self) -> None:
        super().__init__("tagger")

    def init(self, context) -> None:
        super().init(context)
        self.totals = context.get_store("totals")

    def process(self, batch):
        for record in batch:
            key = record.key.encode()
            total = int(self.totals.get(key) or b"0") + record.value
            self.totals.put(key, str(total).encode())
            record.value = total
        self.forward(batch)


async def test_processor_store_survives_a_lost_state_dir_on_the_broker(brokers, tmp_path):
    src, out = unique_name("proc-in"), unique_name("proc-out")
    await create_topics(brokers, {src: 2, out: 2})

    def make_app() -> App:
        app = App(unique_name("proc") if not hasattr(make_app, "id") else make_app.id, brokers=brokers,
                  state_dir=tmp_path / "state", commit_interval=0.2, consumer_config=FAST_GROUP)
        make_app.id = app.app_id
        app.stream(src).process(Tagger, stores=["totals"]).to(out)  # values are JSON numbers
        return app

    app = make_app()
    await produce(brokers, src, [("a", 1), ("b", 10), ("a", 2)])
    async with running(app):
        await wait_for(lambda: dict(app.store("totals").items()) == {"a": 3, "b": 10}, timeout=30)
    shutil.rmtree(tmp_path / "state")  # the next worker must restore "totals" from its changelog
    again = make_app()
    await produce(brokers, src, [("a", 4), ("b", 5)])
    async with running(again):
        await wait_for(lambda: dict(again.store("totals").items()) == {"a": 7, "b": 15}, timeout=30)
    totals = sorted(decoded(await read_topic(brokers, out, expected=5)))
    assert totals == [("a", 1), ("a", 3), ("a", 7), ("b", 10), ("b", 15)]
