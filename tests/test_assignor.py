"""Properties of the task assignor's pure logic: balance, stickiness, warm moves and standby placement."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.runtime.assignor import MemberState, distribute, place_standbys


def fewest_moves(owned: dict[str, list[str]], tasks: list[str]) -> int:
    """Tasks that any balanced assignment must take from their owners (or that have none)."""
    floor, extra = divmod(len(tasks), len(owned))
    seen: set[str] = set()
    counts = []
    for member in sorted(owned):
        mine = {t for t in owned[member] if t in tasks} - seen
        seen |= mine
        counts.append(len(mine))
    return len(tasks) - sum(min(n, floor) for n in counts) - min(extra, sum(1 for n in counts if n > floor))


def task_ids(n: int) -> list[str]:
    return [f"{i % 2}_{i // 2}" for i in range(n)]


def scatter(tasks: list[str], members: list[str], rng: random.Random, fraction: float) -> dict[str, list[str]]:
    """Each task owned by a random member with probability `fraction`, else by nobody."""
    owned: dict[str, list[str]] = {m: [] for m in members}
    for task in tasks:
        if rng.random() < fraction:
            owned[rng.choice(members)].append(task)
    return owned


@settings(max_examples=150, deadline=None)
@given(n_tasks=st.integers(0, 120), n_members=st.integers(1, 12), fraction=st.floats(0, 1),
       rng=st.randoms(use_true_random=False))
def test_distribute_is_complete_exactly_balanced_and_moves_no_more_than_needed(n_tasks, n_members, fraction, rng):
    tasks = task_ids(n_tasks)
    members = [f"m{i}" for i in range(n_members)]
    owned = scatter(tasks, members, rng, fraction)
    result = distribute(tasks, {m: MemberState(owned=owned[m]) for m in members})
    placed = sorted(t for ts in result.values() for t in ts)
    assert placed == sorted(tasks)
    floor, extra = divmod(n_tasks, n_members)
    sizes = sorted(len(ts) for ts in result.values())
    assert sizes == [floor] * (n_members - extra) + [floor + 1] * extra
    kept = sum(1 for m in members for t in result[m] if t in owned[m])
    owned_somewhere = len({t for ts in owned.values() for t in ts})
    assert owned_somewhere - kept == fewest_moves(owned, tasks) - (n_tasks - owned_somewhere)


@settings(max_examples=60, deadline=None)
@given(n_tasks=st.integers(1, 200), n_members=st.integers(1, 20))
def test_an_unchanged_group_keeps_every_task_where_it_is(n_tasks, n_members):
    tasks = task_ids(n_tasks)
    members = [f"m{i}" for i in range(n_members)]
    first = distribute(tasks, {m: MemberState() for m in members})
    again = distribute(tasks, {m: MemberState(owned=first[m]) for m in members})
    assert again == first


def test_a_joining_member_takes_only_its_share_and_a_leaving_members_tasks_go_to_their_standbys():
    tasks = task_ids(100)
    members = [f"m{i}" for i in range(4)]
    first = distribute(tasks, {m: MemberState() for m in members})
    states = {m: MemberState(owned=first[m]) for m in members}
    states["new"] = MemberState()
    joined = distribute(tasks, states)
    assert len(joined["new"]) == 20
    assert sum(1 for m in members for t in first[m] if t not in joined[m]) == 20
    # m0 leaves; each of its tasks has a standby copy on one of the others
    standby = {m: [] for m in members[1:]}
    for i, task in enumerate(first["m0"]):
        standby[members[1 + i % 3]].append(task)
    left = distribute(tasks, {m: MemberState(owned=first[m], standby=standby[m]) for m in members[1:]})
    for member in members[1:]:
        assert set(first[member]) <= set(left[member])
        assert set(left[member]) - set(first[member]) == set(standby[member])


def test_an_over_full_member_gives_up_tasks_whose_state_waits_elsewhere_then_stateless_ones():
    tasks = task_ids(8)  # 0_0, 1_0, 0_1, 1_1, ...: the 1_* tasks keep state
    stateful = {t for t in tasks if t.startswith("1_")}
    states = {"a": MemberState(owned=["0_0", "1_0", "0_1", "1_1", "0_2", "1_2"]),
              "b": MemberState(owned=["1_3"], local=["1_1"]), "c": MemberState()}
    result = distribute(tasks, states, stateful)
    # a's share is 3: 1_1 goes first (b has an old copy), then stateless tasks before stateful ones
    assert "1_1" in result["b"]
    assert result["a"] == ["0_0", "1_0", "1_2"]
    assert sorted(len(ts) for ts in result.values()) == [2, 3, 3]


def test_moved_tasks_prefer_a_standby_copy_over_an_old_one_on_disk():
    tasks = task_ids(4)
    states = {"a": MemberState(owned=["0_0", "1_0"]), "b": MemberState(owned=["0_1"], local=["1_1"]),
              "c": MemberState(standby=["1_1"])}
    result = distribute(tasks, states)
    assert "1_1" in result["c"]


def standby_case(rng: random.Random, n_tasks: int, n_members: int):
    tasks = task_ids(n_tasks)
    members = [f"m{i}" for i in range(n_members)]
    active = distribute(tasks, {m: MemberState() for m in members})
    stateful = {t for t in tasks if rng.random() < 0.7}
    states = {m: MemberState(standby=rng.sample(tasks, min(len(tasks), rng.randint(0, 8))),
                             local=rng.sample(tasks, min(len(tasks), rng.randint(0, 4)))) for m in members}
    return tasks, members, active, stateful, states


@settings(max_examples=150, deadline=None)
@given(n_tasks=st.integers(0, 100), n_members=st.integers(1, 10), replicas=st.integers(0, 3),
       rng=st.randoms(use_true_random=False))
def test_standbys_never_share_a_member_with_their_active_and_cover_every_stateful_task(
        n_tasks, n_members, replicas, rng):
    tasks, members, active, stateful, states = standby_case(rng, n_tasks, n_members)
    standby = place_standbys(active, states, replicas, stateful)
    owner = {t: m for m, ts in active.items() for t in ts}
    copies: dict[str, list[str]] = {}
    for member, ts in standby.items():
        assert len(ts) == len(set(ts)), "two copies of one task on one member"
        for task in ts:
            assert owner[task] != member
            copies.setdefault(task, []).append(member)
    assert set(copies) <= stateful
    wanted = min(replicas, n_members - 1)
    assert all(len(copies.get(t, [])) == wanted for t in stateful)


@settings(max_examples=150, deadline=None)
@given(n_members=st.integers(3, 12), per_member=st.integers(0, 12), replicas=st.integers(1, 2),
       rng=st.randoms(use_true_random=False))
def test_standbys_are_balanced_when_the_stateful_tasks_are(n_members, per_member, replicas, rng):
    members = [f"m{i}" for i in range(n_members)]
    active = {m: [f"1_{i * per_member + j}" for j in range(per_member)] for i, m in enumerate(members)}
    tasks = [t for ts in active.values() for t in ts]
    states = {m: MemberState(standby=rng.sample(tasks, min(len(tasks), rng.randint(0, 6)))) for m in members}
    standby = place_standbys(active, states, replicas)
    sizes = [len(ts) for ts in standby.values()]
    assert max(sizes) - min(sizes) <= 1
    assert sum(sizes) == len(tasks) * replicas


def test_standbys_stay_where_they_are_and_go_to_the_previous_owner_next():
    tasks = task_ids(12)
    members = ["a", "b", "c"]
    active = distribute(tasks, {m: MemberState() for m in members})
    first = place_standbys(active, {m: MemberState() for m in members}, 1)
    again = place_standbys(active, {m: MemberState(owned=active[m], standby=first[m]) for m in members}, 1)
    assert again == first
    # a task moves from a to b: a ran it, so a takes its copy if b held it
    moved = next(t for t in active["a"] if t in first["b"])
    new_active = {m: [t for t in ts if t != moved] for m, ts in active.items()}
    new_active["b"].append(moved)
    states = {m: MemberState(owned=active[m], standby=first[m]) for m in members}
    result = place_standbys(new_active, states, 1)
    assert moved in result["a"]


def test_one_members_standby_copies_spread_over_the_others():
    members = [f"m{i}" for i in range(6)]
    active = {m: [f"1_{i * 5 + j}" for j in range(5)] for i, m in enumerate(members)}
    standby = place_standbys(active, {m: MemberState() for m in members}, 1)
    for member, tasks in active.items():
        holders = {h for h, ts in standby.items() for t in tasks if t in ts}
        assert len(holders) == 5, f"{member}'s copies sit on {sorted(holders)}"
