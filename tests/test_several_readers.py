"""Several readers of one topic: agents and streams share one source; each gets every record once, in order."""

from __future__ import annotations

from streams import App, TestDriver
from streams.transport import TopicPartition
from tests.brokers_helpers import make_app
from tests.conftest import unique_name


def readers(app: App, topic, seen: dict[str, list]) -> None:
    """Two agents, a plain stream and a counting stream, all on one topic."""
    for name in ("first", "second"):
        def make(name: str = name):
            async def agent(stream):
                async for key, value in stream.items():
                    seen[name].append((key, value))
            agent.__name__ = name
            return agent

        app.agent(topic)(make())
    app.stream(topic).foreach(lambda key, value: seen["stream"].append((key, value)))
    app.stream(topic).group_by_key().count(name="per-key")


def test_every_reader_gets_every_record_once_in_order():
    app = App("readers")
    topic = app.topic("events", partitions=2)
    seen = {"first": [], "second": [], "stream": []}
    readers(app, topic, seen)
    assert len(app.topology().subtopologies) == 1, "one sub-topology owns the topic's partitions"
    with TestDriver(app) as driver:
        for n in range(6):
            driver.pipe_input(topic, f"k{n % 3}", n)
        expected = [(f"k{n % 3}", n) for n in range(6)]
        assert seen == {"first": expected, "second": expected, "stream": expected}
        assert dict(driver.store("per-key").items()) == {"k0": 2, "k1": 2, "k2": 2}


async def test_several_readers_on_a_broker(broker_url, tmp_path):
    app = make_app(broker_url, tmp_path)
    topic = app.topic(unique_name("events"), partitions=2)
    seen = {"first": [], "second": [], "stream": []}
    readers(app, topic, seen)
    sent = [(f"k{n % 5}", n) for n in range(40)]
    async with app.running() as run:
        for key, value in sent:
            await run.send(topic, key, value)
        await run.until(lambda: all(len(records) == len(sent) for records in seen.values()), timeout=30)
        await run.until(lambda: dict(app.store("per-key").items()) == {f"k{k}": 8 for k in range(5)}, timeout=30)
    for records in seen.values():
        assert sorted(records) == sorted(sent)
        for key in {k for k, _ in sent}:  # each key lives in one partition: its records stay in order
            assert [v for k, v in records if k == key] == [v for k, v in sent if k == key]


def test_readers_with_other_serdes_each_get_every_record_they_can_read_from_one_batch():
    """The first reader's times order the task's input; the others read the same raw records run by run,
    those the first cannot read included (here a whole chunk of them)."""
    app = App("readers")
    seen: dict[str, list] = {"json": [], "bytes": []}
    app.stream("events").foreach(lambda key, value: seen["json"].append(value))
    app.stream("events", value_serde="bytes").foreach(lambda key, value: seen["bytes"].append(value))
    values = [b"%d" % n for n in range(256)] + [b"not json"] * 300 + [b"%d" % n for n in range(256, 400)]
    with TestDriver(app) as driver:
        with driver.batch():
            for n, value in enumerate(values):
                driver.pipe_raw("events", b"k", value, timestamp=n)
        assert seen["json"] == list(range(400))
        assert seen["bytes"] == values
        assert len(driver.read_output(app.config.dlq_topic, value_serde="bytes")) == 300
        assert driver.tasks["0_0"].offsets == {TopicPartition("events", 0): 700}
