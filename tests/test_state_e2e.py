"""Stateful processing against the real broker: aggregations, changelogs, restore."""

from __future__ import annotations

import asyncio
import shutil
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams import App
from tests.conftest import create_topics, unique_name
from tests.kafka_helpers import FAST_GROUP, decoded, produce, read_topic, running, wait_for


def stateful_app(brokers: str, app_id: str, src: str, state_dir, **kwargs) -> App:
    app = App(app_id, brokers=brokers, state_dir=state_dir, commit_interval=0.2, consumer_config=FAST_GROUP, **kwargs)
    grouped = app.stream(src).group_by(lambda k, v: v["user"], name="by-user")
    grouped.count(name="counts")
    grouped.reduce(lambda agg, v: {"user": v["user"], "amount": agg["amount"] + v["amount"]}, name="totals")
    grouped.aggregate(lambda: [], lambda k, v, ids: sorted({*ids, v["id"]}), name="ids")
    return app


def reference(events: list[dict]) -> tuple[dict, dict, dict]:
    counts = Counter(e["user"] for e in events)
    totals: dict[str, int] = {}
    ids: dict[str, list] = {}
    for e in events:
        totals[e["user"]] = totals.get(e["user"], 0) + e["amount"]
        ids.setdefault(e["user"], []).append(e["id"])
    return dict(counts), totals, {u: sorted(v) for u, v in ids.items()}


def snapshot(app: App) -> tuple[dict, dict, dict]:
    return (dict(app.store("counts").items()),
            {k: v["amount"] for k, v in app.store("totals").items()},
            dict(app.store("ids").items()))


events_strategy = st.lists(
    st.fixed_dictionaries({"user": st.sampled_from(["ann", "bob", "cy", "dee", "eve"]),
                           "amount": st.integers(-100, 100)}),
    min_size=1, max_size=60,
)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw_events=events_strategy)
def test_aggregations_match_plain_python(brokers, tmp_path_factory, raw_events):
    events = [{**e, "id": i} for i, e in enumerate(raw_events)]

    async def scenario():
        src = unique_name("events")
        await create_topics(brokers, {src: 3})
        app = stateful_app(brokers, unique_name("agg"), src, tmp_path_factory.mktemp("state"))
        await produce(brokers, src, [(f"o{e['id']}", e) for e in events])
        async with running(app):
            expected = reference(events)
            await wait_for(lambda: snapshot(app) == expected, timeout=30)

    asyncio.run(scenario())


async def test_restart_restores_only_the_changelog_tail_and_wipe_rebuilds(brokers, tmp_path):
    src, app_id = unique_name("events"), unique_name("tail")
    await create_topics(brokers, {src: 1})
    first_batch = [{"user": f"u{i % 20}", "amount": 1, "id": i} for i in range(200)]
    second_batch = [{"user": f"u{i % 5}", "amount": 2, "id": i} for i in range(200, 260)]
    await produce(brokers, src, [(f"o{e['id']}", e) for e in first_batch])
    app = stateful_app(brokers, app_id, src, tmp_path / "a")
    async with running(app) as worker:
        await wait_for(lambda: snapshot(app) == reference(first_batch), timeout=30)
        assert all(r.restored == 0 for r in worker.restore_results)
    written_by_first = len(await read_topic(brokers, f"{app_id}-counts-changelog", expected=None))
    # another worker (own state dir) processes the second batch: 5 keys change in each store
    await produce(brokers, src, [(f"o{e['id']}", e) for e in second_batch])
    other = stateful_app(brokers, app_id, src, tmp_path / "b")
    async with running(other) as worker:
        await wait_for(lambda: snapshot(other) == reference(first_batch + second_batch), timeout=30)
        cold = {r.store: r.restored for r in worker.restore_results if r.partition.partition == 0}
    assert cold["counts"] >= 20  # a cold store reads the whole changelog
    # the first state dir is behind by the second batch only
    again = stateful_app(brokers, app_id, src, tmp_path / "a")
    async with running(again) as worker:
        assert snapshot(again) == reference(first_batch + second_batch)
        tail = {r.store: r for r in worker.restore_results}
    changelog = await read_topic(brokers, f"{app_id}-counts-changelog", expected=None)
    assert tail["counts"].restored == len(changelog) - written_by_first > 0
    assert tail["counts"].end - tail["counts"].start == tail["counts"].restored
    # wipe local state: the same state comes back from the changelogs alone
    before = reference(first_batch + second_batch)
    shutil.rmtree(tmp_path / "a")
    rebuilt = stateful_app(brokers, app_id, src, tmp_path / "a")
    async with running(rebuilt) as worker:
        assert snapshot(rebuilt) == before
        assert {r.store: r.start for r in worker.restore_results}["counts"] == 0


async def test_changelog_topics_are_compacted_and_tables_emit_updates(brokers, tmp_path):
    src, out, app_id = unique_name("events"), unique_name("counts-out"), unique_name("cl")
    await create_topics(brokers, {src: 2, out: 2})
    app = App(app_id, brokers=brokers, state_dir=tmp_path, commit_interval=0.2, consumer_config=FAST_GROUP,
              cache_max_bytes=0)  # every update: the test follows each one through the filter
    counts = app.stream(src).group_by_key().count(name="counts")
    counts.filter(lambda k, n: n % 2 == 0).to(out)
    await produce(brokers, src, [("a", 1), ("a", 1), ("b", 1), ("a", 1), ("a", 1)])
    async with running(app) as worker:
        got = await read_topic(brokers, out, expected=5)
        info = await worker.admin.describe_topics([f"{app_id}-counts-changelog"])
    assert decoded(got) == [("a", None), ("a", 2), ("b", None), ("a", None), ("a", 4)]
    changelog = info[f"{app_id}-counts-changelog"]
    assert changelog.config["cleanup.policy"] == "compact" and changelog.partitions == 2


async def test_table_from_topic_uses_it_as_changelog(brokers, tmp_path):
    users, app_id = unique_name("users"), unique_name("tbl")
    await create_topics(brokers, {users: 2}, {"cleanup.policy": "compact"})
    await produce(brokers, users, [("ann", {"city": "Oslo"}), ("bob", {"city": "Rome"}), ("ann", {"city": "Pisa"}),
                                   ("bob", None)])
    app = App(app_id, brokers=brokers, state_dir=tmp_path, commit_interval=0.2, consumer_config=FAST_GROUP)
    app.table(users, name="users")
    async with running(app) as worker:
        await wait_for(lambda: dict(app.store("users").items()) == {"ann": {"city": "Pisa"}})
        topics = await worker.admin.describe_topics([f"{app_id}-users-changelog"])
    assert topics[f"{app_id}-users-changelog"] is None  # no second topic
