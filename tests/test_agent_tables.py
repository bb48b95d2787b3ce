"""Agent tables: dict-like tables inside agents, kept in the task's stores with changelogs.

In the TestDriver (reads, writes, +=, del, get, in, defaults, the partition rule),
then through real workers: restored after a restart, followed by a standby, and
committed in the transaction under exactly-once; on the embedded broker and on Kafka.
"""

from __future__ import annotations

import orjson
import pytest

from streams import App, TestDriver, TopologyError
from streams.partitioner import partition_for
from streams.transport import TopicPartition
from streams.transport.embedded import EmbeddedTransport, close_broker
from tests.conftest import unique_name
from tests.kafka_helpers import FAST_GROUP, read_topic
from tests.test_conformance import Target, read_all

FAST = {"session_timeout_ms": 2000, "heartbeat_interval_ms": 100}


def word_app(app_id: str = "words", partitions: int = 1, **settings) -> tuple[App, object]:
    app = App(app_id, **settings)
    words = app.topic(f"{app_id}-words", partitions=partitions)
    totals = app.topic(f"{app_id}-totals", partitions=partitions)
    counts = app.agent_table("counts", default=int)
    seen = app.agent_table("seen")

    @app.agent(words)
    async def count(stream):
        async for word, command in stream.items():
            if command == "forget":
                del counts[word]
                continue
            counts[word] += 1
            seen[word] = {"last": command, "known_before": word in seen}
            await totals.send(word, {"n": counts[word], "seen": seen.get(word)["known_before"]})

    return app, (words, totals)


def test_an_agent_counts_and_forgets_in_a_table():
    app, (words, totals) = word_app()
    with TestDriver(app) as driver:
        for word in ["a", "b", "a"]:
            driver.pipe_input(words, word, "add")
        driver.pipe_input(words, "a", "forget")
        driver.pipe_input(words, "a", "add")
        assert driver.read_key_values(totals) == [
            ("a", {"n": 1, "seen": False}), ("b", {"n": 1, "seen": False}), ("a", {"n": 2, "seen": True}),
            ("a", {"n": 1, "seen": True})]
        assert dict(driver.store("counts").items()) == {"a": 1, "b": 1}
        assert driver.store("seen").get("a") == {"last": "add", "known_before": True}


def test_missing_keys_without_a_default_raise_and_go_to_the_dead_letters():
    app = App("strict", on_error="dlq")
    strict = app.agent_table("strict")
    events = app.topic("events")

    @app.agent(events)
    async def read(stream):
        async for key, _ in stream.items():
            strict[key] = strict[key] + 1  # KeyError: no default

    with TestDriver(app) as driver:
        driver.pipe_input(events, "k", 1)
        [dead] = driver.read_output("strict-dlq", value_serde="bytes")
        assert dict(dead.headers)["streams.error.type"] == b"KeyError"


def test_a_key_of_another_partition_is_a_co_partitioning_error():
    app = App("spread")
    events = app.topic("events", partitions=4)
    by_user = app.agent_table("by-user", default=int)

    @app.agent(events)
    async def tally(stream):
        async for _key, event in stream.items():
            by_user[event["user"]] += 1  # keyed by user, but the input is keyed by event id

    with TestDriver(app) as driver:
        user = "ada"
        home = partition_for(user.encode(), 4)
        event_id = next(f"e{i}" for i in range(100) if partition_for(f"e{i}".encode(), 4) != home)
        with pytest.raises(TopologyError, match=r"belongs to partition \d of 4.*co-partitioned"):
            driver.pipe_input(events, event_id, {"user": user})


def test_a_table_outside_agents_points_to_interactive_queries():
    table = App("plain").agent_table("plain")
    with pytest.raises(RuntimeError, match=r"app.store\('plain'\)"):
        table["x"]


def test_agents_of_unrelated_topics_cannot_share_a_table():
    app = App("two-homes")
    shared = app.agent_table("shared", default=int)

    @app.agent(app.topic("left"))
    async def left(stream):
        async for key in stream:
            shared[key] += 1

    @app.agent(app.topic("right"))
    async def right(stream):
        async for key in stream:
            shared[key] += 1

    with pytest.raises(TopologyError, match="store 'shared' is used by processors that read unrelated topics"):
        app.topology()


def test_a_table_named_in_tables_is_found_without_a_reference():
    app = App("explicit")
    events = app.topic("events")
    tables = {"hidden": app.agent_table("hidden", default=int)}

    def bump(key):
        tables["hidden"][key] += 1

    @app.agent(events, tables=[tables["hidden"]])
    async def use(stream):
        async for key, _ in stream.items():
            bump(key)

    with TestDriver(app) as driver:
        driver.pipe_input(events, "k", 1)
        driver.pipe_input(events, "k", 1)
        assert driver.store("hidden").get("k") == 2


def latest(records) -> dict:
    return {r.key.decode(): orjson.loads(r.value) for r in records}


async def test_a_restarted_worker_restores_the_table_from_its_changelog(tmp_path):
    url = f"local://{tmp_path / 'broker'}"
    app, (words, totals) = word_app("restored", 2, state_dir=tmp_path / "state-1", commit_interval=0.1)
    app.configure(brokers=url)
    async with app.running() as run:
        for word in ["x", "y", "x"]:
            await run.send(words, word, "add")
        await run.read(totals, count=3)
    close_broker(url)  # a new process, and an empty state folder: only the changelog has the counts
    app, (words, totals) = word_app("restored", 2, state_dir=tmp_path / "state-2", commit_interval=0.1)
    app.configure(brokers=url)
    async with app.running() as run:
        await run.send(words, "x", "add")
        [record] = await run.read(totals, count=1)
        assert (record.key, record.value["n"]) == ("x", 3)
        assert sum(r.restored for r in run.worker.restore_results) >= 4, "counts and seen of both keys"
    close_broker(url)


async def test_a_standby_follows_the_table_and_exactly_once_commits_it_with_the_offsets(embedded_brokers, tmp_path):
    def make(name: str) -> tuple[App, tuple]:
        app, topics = word_app("warm", 1, state_dir=tmp_path / name, commit_interval=0.1, consumer_config=FAST,
                               num_standby_replicas=1, processing_guarantee="exactly_once")
        app.configure(brokers=embedded_brokers)
        return app, topics

    first, (words, totals) = make("a")
    second, _ = make("b")
    async with first.running() as run, second.running() as other:
        for word in ["p", "q", "p"]:
            await run.send(words, word, "add")
        await run.read(totals, count=3)
        workers = [run.worker, other.worker]
        await run.until(lambda: any(w.standbys.task_ids == {"0_0"} for w in workers))
        standby = next(w for w in workers if w.standbys.task_ids == {"0_0"})
        store = standby.standbys.stores["0_0"]["counts"]
        await run.until(lambda: store.local.get(b"p") == b"2")
    target = Target("memory", embedded_brokers, EmbeddedTransport(embedded_brokers))
    changelog = "warm-counts-changelog"
    committed = await read_all(target, changelog, 1, isolation_level="read_committed")
    assert committed == await read_all(target, changelog, 1), "every change was committed"
    assert latest(committed) == {"p": 2, "q": 1}
    admin = target.transport.admin()
    await admin.start()
    offsets = await admin.committed_offsets("warm", [TopicPartition("warm-words", 0)])
    assert offsets == {TopicPartition("warm-words", 0): 3}, "input offsets committed with the table's changes"


async def test_agent_table_on_kafka(brokers, tmp_path):
    app_id = unique_name("tables")
    app, (words, totals) = word_app(app_id, 2, state_dir=tmp_path, commit_interval=0.2, consumer_config=FAST_GROUP,
                                    processing_guarantee="exactly_once")
    async with app.running() as run:
        for word in ["k1", "k2", "k1", "k1"]:
            await run.send(words, word, "add")
        got = await run.read(totals, count=4, timeout=30)
        await run.until(lambda: dict(app.store("counts").items()) == {"k1": 3, "k2": 1}, timeout=30)
    assert sorted((r.key, r.value["n"]) for r in got) == [("k1", 1), ("k1", 2), ("k1", 3), ("k2", 1)]
    changelog = await read_topic(brokers, f"{app_id}-counts-changelog", expected=None, idle=1.0)
    assert {r.key: int(r.value) for r in changelog} == {b"k1": 3, b"k2": 1}
