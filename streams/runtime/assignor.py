"""Task-aware, sticky group assignment.

Kafka assigns partitions; the framework thinks in tasks.  The leader maps the
group's partitions to tasks, keeps every task with the member that owned it
(while that member stays within its fair share), gives the rest to members that
hold a standby copy of the task's state, then to the least loaded members.  All
input partitions of a task always go to the same member.

Members also tell the leader the host:port of their web server, if they run
one, and the leader hands every member the whole map of which endpoint runs
which active and standby tasks: that is how any worker knows where each key of
each store lives (interactive queries, streams/runtime/queries.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import orjson

from streams.compiler.compile import PhysicalPlan
from streams.transport.base import MemberAssignment, MemberSubscription, TopicPartition


@dataclass
class MemberState:
    """What a member tells the leader when it joins."""

    owned: list[str] = field(default_factory=list)
    standby: list[str] = field(default_factory=list)
    endpoint: str = ""  # host:port of the member's web server; "" without one

    def encode(self) -> bytes:
        return orjson.dumps({"owned": self.owned, "standby": self.standby, "endpoint": self.endpoint})

    @classmethod
    def decode(cls, data: bytes) -> MemberState:
        if not data:
            return cls()
        try:
            raw = orjson.loads(data)
            return cls(list(raw.get("owned", [])), list(raw.get("standby", [])), str(raw.get("endpoint") or ""))
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

    def owner_of(self, task_id: str) -> str | None:
        """The endpoint that runs the task as active, if the leader knows one."""
        return next((endpoint for endpoint, h in self.hosts.items() if task_id in h.active), None)

    def standbys_of(self, task_id: str) -> list[str]:
        return sorted(endpoint for endpoint, h in self.hosts.items() if task_id in h.standby)


def distribute(tasks: Iterable[str], members: Mapping[str, MemberState]) -> dict[str, list[str]]:
    """Sticky, balanced distribution of task ids over member ids."""
    task_list = sorted(tasks, key=_task_order)
    member_ids = sorted(members)
    capacity = math.ceil(len(task_list) / len(member_ids)) if member_ids else 0
    result: dict[str, list[str]] = {m: [] for m in member_ids}
    owner_of: dict[str, str] = {}
    for member in member_ids:
        for task in members[member].owned:
            owner_of.setdefault(task, member)
    unplaced = []
    for task in task_list:
        owner = owner_of.get(task)
        if owner is not None and len(result[owner]) < capacity:
            result[owner].append(task)
        else:
            unplaced.append(task)
    for task in unplaced:
        holders = [m for m in member_ids if task in members[m].standby and len(result[m]) < capacity]
        candidates = holders or member_ids
        target = min(candidates, key=lambda m: (len(result[m]), m))
        result[target].append(task)
    return result


def place_standbys(active: Mapping[str, list[str]], members: Mapping[str, MemberState],
                   replicas: int) -> dict[str, list[str]]:
    """Put each task's standby copies on members other than its active owner."""
    result: dict[str, list[str]] = {m: [] for m in active}
    if replicas <= 0 or len(active) < 2:
        return result
    owner = {t: m for m, tasks in active.items() for t in tasks}
    for task in sorted(owner, key=_task_order):
        others = [m for m in sorted(active) if m != owner[task]]
        others.sort(key=lambda m: (task not in members[m].standby, len(result[m]) + len(active[m]), m))
        for member in others[:replicas]:
            result[member].append(task)
    return result


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
        active = distribute(plan.tasks, states)
        standby = place_standbys(active, states, self._standby_replicas)
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
