"""Windowed aggregations against the real broker: every window kind, queries, and restarts with open windows."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from streams import App
from streams.windows import Hopping, Session, Sliding, Tumbling, Windowed, WindowedJsonSerde
from tests.conftest import create_topics, unique_name
from tests.kafka_helpers import FAST_GROUP, produce, read_topic, running, wait_for

# Event times near now: the broker deletes records older than its retention (7 days) within seconds.
# A multiple of every window size used here.
REPO = Path(__file__).resolve().parent.parent
BASE = time.time_ns() // 1_000_000 // 600_000 * 600_000 - 600_000
W = WindowedJsonSerde()


def make_app(brokers: str, state_dir, app_id: str | None = None) -> App:
    return App(app_id or unique_name("win"), brokers=brokers, state_dir=state_dir, commit_interval=0.2,
               consumer_config=FAST_GROUP)


def results(records) -> list[tuple]:
    out = []
    for r in records:
        key = W.deserialize(r.key)
        out.append((key.key, key.start - BASE, key.end - BASE, None if r.value is None else orjson.loads(r.value)))
    return out


async def test_tumbling_final_results_over_two_partitions(brokers, tmp_path):
    src, out = unique_name("clicks"), unique_name("per-10s")
    await create_topics(brokers, {src: 2, out: 1})
    app = make_app(brokers, tmp_path)
    app.stream(src).group_by_key().window(Tumbling(10_000, grace=2_000)).count(name="counts", emit="final").to(out)
    users = ["u0", "u1", "u2", "u3"]
    offsets = [1_000, 4_000, 9_500, 11_000, 8_000, 13_000, 5_000, 15_000]  # 8 s within grace, 5 s late
    await produce(brokers, src, [(u, {"n": i}, BASE + t) for i, t in enumerate(offsets) for u in users])
    for partition in range(2):  # move stream time on in both tasks
        await produce(brokers, src, [("flush", {}, BASE + 100_000)], partition=partition)
    async with running(app) as worker:
        got = await read_topic(brokers, out, expected=8)
        await wait_for(lambda: worker.metrics.get("late_records") == 4)
        assert await read_topic(brokers, out, idle=1.0) == got  # one result per window, no more
        changelog = f"{app.app_id}-counts-changelog"
        config = (await worker.admin.describe_topics([changelog]))[changelog].config
    assert set(config["cleanup.policy"].split(",")) == {"compact", "delete"}
    assert int(config["retention.ms"]) >= 12_000
    assert sorted(results(got)) == sorted([(u, 0, 10_000, 4) for u in users] + [(u, 10_000, 20_000, 3) for u in users])
    assert {r.timestamp - BASE for r in got} == {9_500, 15_000}


async def test_hopping_updates_and_queries(brokers, tmp_path):
    src, out = unique_name("readings"), unique_name("sums")
    await create_topics(brokers, {src: 1, out: 1})
    app = make_app(brokers, tmp_path)
    table = app.stream(src).group_by_key().window(Hopping(10_000, 5_000)).reduce(lambda a, b: a + b, name="sums",
                                                                                 retention=60_000)
    table.to(out)
    await produce(brokers, src, [("s", 1, BASE + 2_000), ("s", 10, BASE + 7_000), ("s", 100, BASE + 12_000)])
    async with running(app):
        got = await read_topic(brokers, out, expected=6)
        assert results(got) == [("s", -5_000, 5_000, 1), ("s", 0, 10_000, 1), ("s", 0, 10_000, 11),
                                ("s", 5_000, 15_000, 10), ("s", 5_000, 15_000, 110), ("s", 10_000, 20_000, 100)]
        expected = [(Windowed("s", BASE + s, BASE + s + 10_000), v)
                    for s, v in [(-5_000, 1), (0, 11), (5_000, 110), (10_000, 100)]]
        assert app.store(table.store_name).fetch("s") == expected
        assert app.store(table.store_name).fetch("s", BASE, BASE + 5_000) == expected[1:3]
        assert app.store("sums").fetch_all(BASE + 10_000) == expected[3:]


async def test_sliding_updates(brokers, tmp_path):
    src, out = unique_name("events"), unique_name("sliding")
    await create_topics(brokers, {src: 1, out: 1})
    app = make_app(brokers, tmp_path)
    table = app.stream(src).group_by_key().window(Sliding(10_000, grace=20_000)).count(name="sliding")
    table.to(out)
    await produce(brokers, src, [("a", 1, BASE + t) for t in (10_000, 15_000, 25_000, 12_000)])
    async with running(app):
        got = await read_topic(brokers, out, expected=9)
        assert await read_topic(brokers, out, idle=1.0) == got
        stored = app.store(table.store_name).fetch("a")
    last = {}
    for _key, start, end, count in results(got):
        last[(start, end)] = count
    s = 1_000  # the windows of the driver test, in seconds
    assert last == {(0, 10 * s): 1, (5 * s, 15 * s): 3, (10 * s + 1, 20 * s + 1): 2, (15 * s, 25 * s): 2,
                    (15 * s + 1, 25 * s + 1): 1, (2 * s, 12 * s): 2, (12 * s + 1, 22 * s + 1): 1}
    assert {(w.start - BASE, w.end - BASE): n for w, n in stored} == last


async def test_sessions_merge_with_tombstones_and_final_results(brokers, tmp_path):
    src, updates, finals = unique_name("visits"), unique_name("session-updates"), unique_name("sessions")
    await create_topics(brokers, {src: 2, updates: 1, finals: 1})
    app = make_app(brokers, tmp_path)
    windowed = app.stream(src).group_by_key().window(Session(10_000, grace=30_000))
    windowed.count(name="live").to(updates)
    windowed.aggregate(list, lambda k, v, pages: [*pages, v["page"]], name="pages", emit="final",
                       merger=lambda k, a, b: a + b).to(finals)
    visits = [(0, "home"), (25_000, "cart"), (12_000, "search"), (8_000, "item"), (18_000, "pay")]
    await produce(brokers, src, [("ann", {"page": page}, BASE + t) for t, page in visits])
    await produce(brokers, src, [("ann", {"page": "later"}, BASE + 200_000)])
    async with running(app):
        got = await read_topic(brokers, updates, expected=10)
        final = await read_topic(brokers, finals, expected=1)
    s = 1_000
    assert results(got) == [
        ("ann", 0, 0, 1), ("ann", 25 * s, 25 * s, 1), ("ann", 12 * s, 12 * s, 1),
        ("ann", 0, 0, None), ("ann", 12 * s, 12 * s, None), ("ann", 0, 12 * s, 3),
        ("ann", 0, 12 * s, None), ("ann", 25 * s, 25 * s, None), ("ann", 0, 25 * s, 5),
        ("ann", 200 * s, 200 * s, 1),
    ]
    # Merged sessions' pages come oldest session first, then the record that bridged them.
    assert results(final) == [("ann", 0, 25 * s, ["home", "search", "item", "cart", "pay"])]


@pytest.mark.parametrize("wipe", [False, True], ids=["same-state-dir", "wiped-state-dir"])
async def test_open_windows_and_stream_time_survive_a_restart(brokers, tmp_path, wipe):
    src, out = unique_name("clicks"), unique_name("finals")
    await create_topics(brokers, {src: 1, out: 1})
    app_id = unique_name("win-restart")

    def build(state_dir) -> tuple[App, object]:
        app = make_app(brokers, state_dir, app_id)
        table = app.stream(src).group_by_key().window(Tumbling(10_000)).count(name="counts", emit="final")
        table.to(out)
        return app, table

    app, table = build(tmp_path / "first")
    await produce(brokers, src, [("a", 1, BASE + 1_000), ("b", 1, BASE + 2_000), ("a", 1, BASE + 12_000),
                                 ("a", 1, BASE + 15_000), ("b", 1, BASE + 18_000)])
    async with running(app):
        first = await read_topic(brokers, out, expected=2)
        await wait_for(lambda: len(app.store(table.store_name).fetch_all()) == 2)
    assert sorted(results(first)) == [("a", 0, 10_000, 1), ("b", 0, 10_000, 1)]

    app, table = build(tmp_path / ("second" if wipe else "first"))
    async with running(app) as worker:
        # Restored before any new record: the open windows, and the stream time (b at 5 s is late).
        windows = app.store(table.store_name).fetch_all()
        assert [(w.key, w.start - BASE, n) for w, n in windows] == [("a", 10_000, 2), ("b", 10_000, 1)]
        await produce(brokers, src, [("b", 1, BASE + 5_000), ("a", 1, BASE + 19_000), ("c", 1, BASE + 20_000)])
        everything = await read_topic(brokers, out, expected=4)
        await wait_for(lambda: worker.metrics.get("late_records") == 1)
        assert await read_topic(brokers, out, idle=1.0) == everything
    assert sorted(results(everything[2:])) == [("a", 10_000, 20_000, 3), ("b", 10_000, 20_000, 1)]
    if wipe:
        assert any(r.restored for r in worker.restore_results)


def test_windowed_counts_example_runs_against_the_broker(brokers):
    env = {**os.environ, "STREAMS_BROKERS": brokers}
    done = subprocess.run([sys.executable, str(REPO / "examples" / "windowed_counts.py")], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("401 views over 20 minutes; 2 late drops")
    assert "views per page and minute (final results):" in lines
    sessions = lines[lines.index("sessions per user:") + 1:]
    assert len(sessions) == 4 and all(s.count("views") == 2 for s in sessions)  # two sessions per user


async def test_a_backlog_regrouped_before_a_windowed_count_drops_almost_nothing_as_late(brokers, tmp_path):
    """Event times in order in each of 2 input partitions; run task by task, the repartition topic got
    one partition's whole time range, then the other's, and about half the records were late."""
    src = unique_name("visits")
    await create_topics(brokers, {src: 2})
    records, step = 3000, 200
    users = [f"u{n}" for n in range(20)]
    visits = [(users[(i * 7) % 20], {"user": users[(i * 7) % 20]}, BASE + i * step, i % 2) for i in range(records)]
    for partition in range(2):
        await produce(brokers, src, [(k, v, t) for k, v, t, p in visits if p == partition], partition=partition)
    app = make_app(brokers, tmp_path)
    app.stream(src).group_by(lambda key, visit: visit["user"], name="by-user").window(
        Tumbling(10_000, grace=2_000)).count(name="visits", retention=3_600_000)  # keeps every window
    async with running(app) as worker:
        await wait_for(lambda: worker.metrics.get("records_processed") >= 2 * records, timeout=60)
        late = worker.metrics.get("late_records")
        counted = sum(count for _window, count in app.store("visits").fetch_all())
    assert late < records // 100, f"{late} of {records} records were late"
    assert counted == records - late
