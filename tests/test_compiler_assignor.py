"""Pure-logic tests of compilation into tasks, the task assignor and schedules."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams import App, TopologyError
from streams.compiler.compile import plan_tasks
from streams.runtime.assignor import MemberState, TaskAssignment, TaskAssignor, distribute
from streams.runtime.scheduler import ManualClock, Schedule, Scheduler, cron, every
from streams.transport.base import MemberSubscription, TopicPartition


def two_stage_app() -> App:
    app = App("shop", brokers="unused:9092")
    orders = app.stream(["orders-eu", "orders-us"])
    orders.group_by(lambda k, v: v["customer"], name="by-customer").keyed_stream("x").to("out")
    return app


def test_subtopologies_split_at_repartition_and_tasks_are_named():
    app = two_stage_app()
    topology = app.topology()
    assert [s.id for s in topology.subtopologies] == [0, 1]
    assert topology.subtopologies[0].source_topics == ["orders-eu", "orders-us"]
    assert topology.subtopologies[1].source_topics == ["shop-by-customer-repartition"]
    plan = plan_tasks(topology, {"orders-eu": 3, "orders-us": 2})
    assert sorted(plan.tasks) == ["0_0", "0_1", "0_2", "1_0", "1_1", "1_2"]
    assert plan.partition_counts["shop-by-customer-repartition"] == 3
    assert plan.tasks["0_1"].inputs == {TopicPartition("orders-eu", 1), TopicPartition("orders-us", 1)}
    assert plan.tasks["0_2"].inputs == {TopicPartition("orders-eu", 2)}
    assert plan.task_of[TopicPartition("shop-by-customer-repartition", 2)] == "1_2"


def test_explicit_repartition_size():
    app = App("a", brokers="unused:9092")
    app.stream("in").repartition(name="wide", partitions=7).to("out")
    plan = plan_tasks(app.topology(), {"in": 2})
    assert plan.partition_counts["a-wide-repartition"] == 7
    assert len([t for t in plan.tasks if t.startswith("1_")]) == 7


def test_missing_source_topic_is_named():
    with pytest.raises(TopologyError, match="orders-us"):
        plan_tasks(two_stage_app().topology(), {"orders-eu": 3, "orders-us": None})


def test_copartitioning_error_names_topics():
    from streams.compiler.topology import Node

    app = App("a", brokers="unused:9092")
    merged = app.stream("left").merge(app.stream("right"))
    merged._node.params["copartitioned"] = True
    with pytest.raises(TopologyError, match=r"left \(4 partitions\), right \(2 partitions\)"):
        plan_tasks(app.topology(), {"left": 4, "right": 2})
    assert Node  # the node API is what a join uses to ask for co-partitioning


def test_empty_topology_is_an_error():
    with pytest.raises(TopologyError, match="no source"):
        App("a", brokers="memory://").topology()


def assignor_for(app: App) -> TaskAssignor:
    topology = app.topology()
    return TaskAssignor(lambda counts: plan_tasks(topology, counts), MemberState)


def test_assignor_keeps_task_partitions_together_and_is_sticky():
    assignor = assignor_for(two_stage_app())
    counts = {"orders-eu": 4, "orders-us": 4, "shop-by-customer-repartition": 4}
    subs = {m: MemberSubscription(("orders-eu",), MemberState().encode()) for m in ("m1", "m2")}
    first = assignor.assign(subs, counts)
    tasks = {m: TaskAssignment.decode(a.user_data).active for m, a in first.items()}
    assert sorted(tasks["m1"] + tasks["m2"]) == sorted(f"{s}_{p}" for s in (0, 1) for p in range(4))
    for member, assignment in first.items():
        parts = set(assignment.partitions)
        for task in tasks[member]:
            sub, part = task.split("_")
            topics = ["orders-eu", "orders-us"] if sub == "0" else ["shop-by-customer-repartition"]
            assert {TopicPartition(t, int(part)) for t in topics} <= parts
    # a third member joins: the old members keep all but what the newcomer needs
    subs = {m: MemberSubscription((), MemberState(owned=tasks[m]).encode()) for m in ("m1", "m2")}
    subs["m3"] = MemberSubscription((), MemberState().encode())
    second = {m: TaskAssignment.decode(a.user_data).active for m, a in assignor.assign(subs, counts).items()}
    moved = sum(1 for m in ("m1", "m2") for t in tasks[m] if t not in second[m])
    assert moved == len(second["m3"]) == 2
    assert TaskAssignment.decode(assignor.assign(subs, counts)["m2"].user_data).leader == "m1"


@settings(max_examples=60, deadline=None)
@given(
    tasks=st.sets(st.tuples(st.integers(0, 2), st.integers(0, 9)), min_size=1, max_size=30),
    members=st.integers(1, 6),
    owned_seed=st.randoms(use_true_random=False),
)
def test_distribute_is_complete_and_balanced(tasks, members, owned_seed):
    task_ids = [f"{s}_{p}" for s, p in tasks]
    states = {f"m{i}": MemberState(owned=[t for t in task_ids if owned_seed.random() < 0.3]) for i in range(members)}
    result = distribute(task_ids, states)
    placed = [t for ts in result.values() for t in ts]
    assert sorted(placed) == sorted(task_ids)
    sizes = [len(ts) for ts in result.values()]
    assert max(sizes) - min(sizes) <= max(1, -(-len(task_ids) // members))
    assert max(sizes) <= -(-len(task_ids) // members)


def test_distribute_prefers_standby_holders():
    states = {"a": MemberState(), "b": MemberState(standby=["0_1"]), "c": MemberState()}
    result = distribute(["0_0", "0_1", "0_2"], states)
    assert "0_1" in result["b"]


async def test_timer_and_crontab_under_manual_clock():
    start = datetime(2026, 1, 1, 11, 58, 30, tzinfo=UTC).timestamp()
    clock = ManualClock(start)
    fired: list[tuple[str, float]] = []
    scheduler = Scheduler(clock)
    scheduler.add(Schedule("tick", lambda: fired.append(("tick", clock.now())), every(10)))

    async def report():
        fired.append(("cron", clock.now()))

    scheduler.add(Schedule("cron", report, cron("*/5 * * * *", "Europe/Paris")))
    scheduler.add(Schedule("leader-only", lambda: fired.append(("leader", clock.now())), every(10), on_leader=True))
    scheduler.start()
    assert await scheduler.run_due(is_leader=False) == 0
    for _ in range(40):
        clock.advance(10)
        await scheduler.run_due(is_leader=False)
    ticks = [t for name, t in fired if name == "tick"]
    crons = [datetime.fromtimestamp(t, UTC).strftime("%H:%M") for name, t in fired if name == "cron"]
    assert len(ticks) == 40
    assert crons == ["12:00", "12:05"]
    assert not [1 for name, _ in fired if name == "leader"]
    clock.advance(10)
    await scheduler.run_due(is_leader=True)
    assert [name for name, _ in fired].count("leader") == 1


def test_invalid_crontab_is_rejected():
    with pytest.raises(ValueError, match="invalid crontab"):
        App("a", brokers="memory://").crontab("every day")(lambda: None)
