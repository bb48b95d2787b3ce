"""Task-aware, sticky group assignment.

Kafka assigns partitions; the framework thinks in tasks.  The leader maps the
group's partitions to tasks and places them so that:

- every member gets its fair share: floor(tasks / members) tasks, and one more
  for exactly (tasks mod members) of them;
- as few tasks as possible change owner: a member keeps the tasks it ran
  before the rebalance up to its share, and the extra shares go to the members
  that ran most;
- a task that must move goes where its state is warmest: a member with a
  standby copy, else one with an older copy left on disk, else the least
  loaded member;
- each stateful task gets standby copies on members other than its owner,
  spread evenly, kept where they were, else put on the task's previous owner
  or on a member with an old copy on disk.

All input partitions of a task always go to the same member.  Everything here
is pure logic, run once per rebalance by the group leader; bench/assignor_sim.py
measures it on large synthetic groups.

Members also tell the leader the host:port of their web server, if they run
one, and the leader hands every member the whole map of which endpoint runs
which active and standby tasks: that is how any worker knows where each key of
each store lives (interactive queries, streams/runtime/queries.py).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field

import orjson

from streams.compiler.compile import PhysicalPlan
from streams.transport.base import MemberAssignment, MemberSubscription, TopicPartition


@dataclass
class MemberState:
    """What a member tells the leader when it joins.

    owned: the tasks it ran before this rebalance (a worker closes them when
    their partitions are revoked, before it joins, so it reports them from
    memory); standby: the standby tasks it follows; local: other tasks whose
    stores it still has on disk, at an older checkpoint.
    """

    owned: list[str] = field(default_factory=list)
    standby: list[str] = field(default_factory=list)
    local: list[str] = field(default_factory=list)
    endpoint: str = ""  # host:port of the member's web server; "" without one

    def encode(self) -> bytes:
        return orjson.dumps({"owned": self.owned, "standby": self.standby, "local": self.local,
                             "endpoint": self.endpoint})

    @classmethod
    def decode(cls, data: bytes) -> MemberState:
        if not data:
            return cls()
        try:
            raw = orjson.loads(data)
            return cls(list(raw.get("owned", [])), list(raw.get("standby", [])), list(raw.get("local", [])),
                       str(raw.get("endpoint") or ""))
        except (orjson.JSONDecodeError, AttributeError, TypeError):
            return cls()


@dataclass
class HostTasks:
    """The tasks one endpoint runs, as the leader assigned them."""

    active: list[str] = field(default_factory=list)
    standby: list[str] = field(default_factory=list)


@dataclass
class TaskAssignment:
    """What the leader tells each member: its active and standby tasks."""

    active: list[str]
    standby: list[str]
    leader: str
    hosts: dict[str, HostTasks] = field(default_factory=dict)  # endpoint -> its tasks, for every member with one

    def encode(self) -> bytes:
        hosts = {endpoint: {"active": h.active, "standby": h.standby} for endpoint, h in self.hosts.items()}
        return orjson.dumps({"active": self.active, "standby": self.standby, "leader": self.leader, "hosts": hosts})

    @classmethod
    def decode(cls, data: bytes) -> TaskAssignment:
        raw = orjson.loads(data) if data else {}
        hosts = {endpoint: HostTasks(list(h.get("active", [])), list(h.get("standby", [])))
                 for endpoint, h in (raw.get("hosts") or {}).items()}
        return cls(list(raw.get("active", [])), list(raw.get("standby", [])), raw.get("leader", ""), hosts)


class _Shares:
    """Fair shares of `total` items over members, handed out as items are placed.

    Every member may take floor(total / members) items; `extra` of them may take
    one more.  Extra shares go first to the members that keep the most, the rest
    to whoever reaches its floor first, so placing all items always fits.
    """

    def __init__(self, members: Iterable[str], total: int) -> None:
        self.load = dict.fromkeys(members, 0)
        self.floor, self.extra = divmod(total, len(self.load)) if self.load else (0, 0)
        self.limit = dict.fromkeys(self.load, self.floor)

    def grant_extra(self, claims: Mapping[str, int]) -> None:
        """Give the extra shares to the members claiming most beyond their floor."""
        over = sorted((m for m, n in claims.items() if n > self.floor), key=lambda m: (-claims[m], m))
        for member in over[: self.extra]:
            self.limit[member] += 1
        self.extra -= min(self.extra, len(over))

    def room(self, member: str) -> bool:
        load = self.load[member]
        return load < self.limit[member] or (self.extra > 0 and load == self.limit[member] == self.floor)

    def take(self, member: str) -> None:
        if self.load[member] == self.limit[member]:
            self.limit[member] += 1
            self.extra -= 1
        self.load[member] += 1


def _keep_within_share(claims: Mapping[str, list[str]], shares: _Shares,
                       release_rank: Callable[[str, str], int]) -> tuple[dict[str, list[str]], list[str]]:
    """Each member keeps its claimed items up to its share; returns (kept, released).

    A member over its share releases the items of highest release_rank(item,
    member) first: those that are cheapest to move.
    """
    shares.grant_extra({m: len(items) for m, items in claims.items()})
    kept: dict[str, list[str]] = {}
    released: list[str] = []
    for member, items in claims.items():
        limit = shares.limit[member]
        if len(items) > limit:
            items = sorted(items, key=lambda item: release_rank(item, member))  # stable: task order within
            released.extend(items[limit:])
            items = items[:limit]
        kept[member] = list(items)
        shares.load[member] = len(items)
    return kept, released


class _LeastLoaded:
    """Members by load; among equal loads, the one served longest ago first (spreads consecutive picks)."""

    def __init__(self, shares: _Shares) -> None:
        self._shares = shares
        self._seq = 0
        self._heap = []
        for member in sorted(shares.load):
            self._push(member)

    def _push(self, member: str) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (self._shares.load[member], self._seq, member))

    def pick(self, allowed: Callable[[str], bool]) -> str | None:
        """Take one share from the least loaded member with room that `allowed` accepts."""
        skipped = []
        chosen = None
        while self._heap:
            load, seq, member = heapq.heappop(self._heap)
            if load != self._shares.load[member]:
                self._push(member)  # stale entry: its load changed since it was pushed
                continue
            if not self._shares.room(member):
                continue  # full for good: loads only grow, and extra shares only run out
            if allowed(member):
                chosen = member
                break
            skipped.append((load, seq, member))
        for entry in skipped:
            heapq.heappush(self._heap, entry)
        if chosen is not None:
            self._shares.take(chosen)
            self._push(chosen)
        return chosen


def _holders(members: Mapping[str, MemberState], attribute: str, known: Collection[str]) -> dict[str, list[str]]:
    """Task id -> members (in id order) listing it under `attribute`."""
    out: dict[str, list[str]] = {}
    for member in sorted(members):
        for task in getattr(members[member], attribute):
            if task in known:
                out.setdefault(task, []).append(member)
    return out


def distribute(tasks: Iterable[str], members: Mapping[str, MemberState],
               stateful: Collection[str] | None = None) -> dict[str, list[str]]:
    """Sticky, balanced distribution of task ids over member ids (see the module docstring).

    `stateful` names the tasks with stores (None: all of them); a member over
    its share gives up stateless tasks before stateful ones without a warm copy.
    """
    task_list = sorted(set(tasks), key=_task_order)
    member_ids = sorted(members)
    result: dict[str, list[str]] = {m: [] for m in member_ids}
    if not member_ids:
        return result
    known = set(task_list)
    owner_of: dict[str, str] = {}
    for member in member_ids:
        for task in members[member].owned:
            if task in known:
                owner_of.setdefault(task, member)
    claims: dict[str, list[str]] = {m: [] for m in member_ids}
    for task in task_list:
        if task in owner_of:
            claims[owner_of[task]].append(task)
    standby_at = _holders(members, "standby", known)
    local_at = _holders(members, "local", known)
    shares = _Shares(member_ids, len(task_list))
    claimed = {m: len(c) for m, c in claims.items()}

    def release_rank(task: str, member: str) -> int:
        """2: another member with room has a copy of its state; 1: stateless; 0: its state would go cold."""
        if any(h != member and claimed[h] < shares.floor for h in (*standby_at.get(task, ()), *local_at.get(task, ()))):
            return 2
        return 1 if stateful is not None and task not in stateful else 0

    kept, released = _keep_within_share(claims, shares, release_rank)
    for member, items in kept.items():
        result[member].extend(items)
    cold = []
    for task in sorted([*released, *(t for t in task_list if t not in owner_of)], key=_task_order):
        target = next((h for h in standby_at.get(task, ()) if shares.room(h)), None)
        if target is None:
            target = next((h for h in local_at.get(task, ()) if shares.room(h)), None)
        if target is None:
            cold.append(task)
            continue
        shares.take(target)
        result[target].append(task)
    least_loaded = _LeastLoaded(shares)
    for task in cold:
        target = least_loaded.pick(lambda m: True)
        assert target is not None, "shares add up to the number of tasks"
        result[target].append(task)
    for member in member_ids:
        result[member].sort(key=_task_order)
    return result


def place_standbys(active: Mapping[str, list[str]], members: Mapping[str, MemberState], replicas: int,
                   stateful: Collection[str] | None = None) -> dict[str, list[str]]:
    """Put `replicas` standby copies of each stateful task on members other than its owner.

    Copies stay where they were (within each member's fair share of copies),
    then go to the task's previous owner, then to a member with an old copy on
    disk, then to the least loaded members; the copies of one owner's tasks
    spread over many members, so that when it fails its load spreads too.
    `stateful` limits the tasks that get copies (None: all of them).
    """
    result: dict[str, list[str]] = {m: [] for m in active}
    copies = min(replicas, len(active) - 1)
    if copies <= 0:
        return result
    owner = {t: m for m, tasks in active.items() for t in tasks}
    tasks = sorted((t for t in owner if stateful is None or t in stateful), key=_task_order)
    known = set(tasks)
    shares = _Shares(sorted(active), len(tasks) * copies)
    holders: dict[str, set[str]] = {t: set() for t in tasks}
    claims: dict[str, list[str]] = {m: [] for m in active}
    for member in sorted(active):
        state = members.get(member, MemberState())
        for task in state.standby:
            if task in known and owner[task] != member and len(holders[task]) < copies and member not in holders[task]:
                holders[task].add(member)
                claims[member].append(task)
    previous_at = _holders({m: s for m, s in members.items() if m in active}, "owned", known)
    local_at = _holders({m: s for m, s in members.items() if m in active}, "local", known)
    claimed = {m: len(c) for m, c in claims.items()}

    def release_rank(task: str, member: str) -> int:
        """1: a member with room has its state; -1: its owner has room, so the members
        short of copies are likely its owner alone, who may not take it; else 0."""
        if any(h != member and h != owner[task] and claimed[h] < shares.floor
               for h in (*previous_at.get(task, ()), *local_at.get(task, ()))):
            return 1
        return -1 if claimed[owner[task]] < shares.floor else 0

    kept, released = _keep_within_share(claims, shares, release_rank)
    for member, items in claims.items():
        for task in set(items) - set(kept[member]):
            holders[task].discard(member)
        result[member].extend(kept[member])

    def eligible(task: str, member: str) -> bool:
        return member != owner[task] and member not in holders[task]

    def place(task: str, member: str) -> None:
        holders[task].add(member)
        result[member].append(task)

    for task in tasks:
        for member in (*previous_at.get(task, ()), *local_at.get(task, ())):
            if len(holders[task]) < copies and eligible(task, member) and shares.room(member):
                shares.take(member)
                place(task, member)
    least_loaded = _LeastLoaded(shares)
    by_owner = sorted(tasks, key=lambda t: (owner[t], _task_order(t)))
    for task in by_owner:
        while len(holders[task]) < copies:
            target = least_loaded.pick(lambda m, task=task: eligible(task, m))
            if target is None:
                target = _swap_for(task, result, owner, holders, shares, eligible)
            if target is None:  # the owner constraint leaves no balanced choice: overfill the least loaded
                target = min((m for m in result if eligible(task, m)), key=lambda m: (len(result[m]), m))
                shares.load[target] += 1
            place(task, target)
    for member in result:
        result[member].sort(key=_task_order)
    return result


def _swap_for(task: str, result: dict[str, list[str]], owner: Mapping[str, str], holders: dict[str, set[str]],
              shares: _Shares, eligible: Callable[[str, str], bool]) -> str | None:
    """Make room for a copy of `task` when only ineligible members have room.

    Finds a member m that may hold `task` and a copy s on m that a member r with
    room may hold instead; moves s to r, so m can take `task` at an unchanged load.
    """
    with_room = [r for r in sorted(result) if shares.room(r)]
    for member in sorted(result):
        if not eligible(task, member):
            continue
        for other in result[member]:
            receiver = next((r for r in with_room if r != member and eligible(other, r)), None)
            if receiver is not None:
                result[member].remove(other)
                holders[other].discard(member)
                shares.take(receiver)
                holders[other].add(receiver)
                result[receiver].append(other)
                return member
    return None


def _task_order(task_id: str) -> tuple[int, int]:
    sub, _, partition = task_id.partition("_")
    return int(sub), int(partition)


class TaskAssignor:
    """The GroupAssignor that the worker gives its transport."""

    name = "streams-task"

    def __init__(self, plan_for: Callable[[Mapping[str, int]], PhysicalPlan], member_state: Callable[[], MemberState],
                 standby_replicas: int = 0) -> None:
        self._plan_for = plan_for
        self._member_state = member_state
        self._standby_replicas = standby_replicas
        self.assignment: TaskAssignment | None = None

    def subscription_user_data(self) -> bytes:
        return self._member_state().encode()

    def assign(self, members: Mapping[str, MemberSubscription],
               partitions_per_topic: Mapping[str, int]) -> dict[str, MemberAssignment]:
        plan = self._plan_for(partitions_per_topic)
        states = {m: MemberState.decode(sub.user_data) for m, sub in members.items()}
        stateful = {task_id for task_id, task in plan.tasks.items() if task.subtopology.stores}
        active = distribute(plan.tasks, states, stateful)
        standby = place_standbys(active, states, self._standby_replicas, stateful)
        leader = min(members)
        hosts: dict[str, HostTasks] = {}
        for member, state in sorted(states.items()):
            if state.endpoint:
                host = hosts.setdefault(state.endpoint, HostTasks())
                host.active.extend(active[member])
                host.standby.extend(standby[member])
        out = {}
        for member in members:
            partitions: list[TopicPartition] = sorted(
                tp for task in active[member] for tp in plan.tasks[task].inputs
            )
            data = TaskAssignment(active[member], standby[member], leader, hosts).encode()
            out[member] = MemberAssignment(tuple(partitions), data)
        return out

    def on_assignment(self, assignment: MemberAssignment) -> None:
        self.assignment = TaskAssignment.decode(assignment.user_data)
