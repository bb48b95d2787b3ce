"""The task assignor on a synthetic group at scale: time, balance, moves and warm-ups per rebalance.

    python -m bench.assignor_sim [--tasks 10000] [--workers 200] [--standbys 1] [--restart-fraction 0.1]

No broker: the leader's side of a rebalance is pure logic, so this drives the
assignor the worker gives its consumer (TaskAssignor.assign, from decoding the
members' subscriptions to encoding their assignments) with subscriptions built
the way workers build them.  The topology is a count behind a repartition
topic, so half of the tasks are stateless and half keep a store.

A simulated worker reports the tasks it ran before the rebalance, the standby
tasks it follows, and the other tasks whose stores it still has on disk.  A
restarted worker comes back with a new member id, no tasks and its disk.

Events: every worker joins an empty group; a rebalance with nothing changed;
then a rolling restart of --restart-fraction of the workers, one after the
other, each a rebalance for the leave and one for the rejoin.

Per rebalance it reports:
- the time of one assignment;
- the balance: most and fewest active tasks (and standby tasks) per worker;
- active tasks moved, against the fewest moves any balanced assignment needs
  from what the members owned (each member keeps at most its fair share);
- warm-ups: stateful tasks that became active, or got a standby copy, on a
  worker whose copy of the state is only an older one left on disk ("stale")
  or that has none ("cold"), so that it must replay a changelog from an old
  checkpoint or from its beginning.  Moves onto a standby copy replay only the
  standby's short lag and are counted apart ("warm").
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass, field

import orjson

from streams import App
from streams.compiler.compile import plan_tasks
from streams.runtime.assignor import TaskAssignment, TaskAssignor
from streams.transport.base import MemberSubscription

APP_ID = "sim"


@dataclass
class SimWorker:
    """What one worker knows about its tasks between rebalances."""

    name: str
    incarnation: int = 0
    active: set[str] = field(default_factory=set)
    standby: set[str] = field(default_factory=set)
    disk: set[str] = field(default_factory=set)

    @property
    def member_id(self) -> str:
        return f"{self.name}-{self.incarnation}"

    def subscription(self) -> MemberSubscription:
        local = sorted(self.disk - self.active - self.standby)
        data = orjson.dumps({"owned": sorted(self.active), "standby": sorted(self.standby), "local": local})
        return MemberSubscription(("input",), data)

    def restart(self) -> None:
        self.incarnation += 1
        self.active, self.standby = set(), set()


@dataclass
class Rebalance:
    event: str
    seconds: float
    active_max: int
    active_min: int
    standby_max: int
    standby_min: int
    moved: int
    minimum: int
    warm: int = 0
    stale: int = 0
    cold: int = 0
    standby_copies: int = 0
    standby_minimum: int = 0
    standby_stale: int = 0
    standby_cold: int = 0


def minimum_moves(owned: dict[str, set[str]], tasks: set[str], placed_before: set[str]) -> int:
    """Fewest tasks placed before that must change owner to reach a balanced assignment.

    Balanced means every member ends with floor(T/M) or floor(T/M)+1 tasks, the
    larger share going to exactly T mod M members.  A member keeps at most its
    share of the tasks it owns; the extra shares go to the members owning most.
    """
    floor, extra = divmod(len(tasks), len(owned))
    claimed: set[str] = set()
    counts = []
    for member in sorted(owned):
        mine = (owned[member] & tasks) - claimed
        claimed |= mine
        counts.append(len(mine))
    kept = sum(min(n, floor) for n in counts) + min(extra, sum(1 for n in counts if n > floor))
    return len(tasks & placed_before) - kept


def copy_kind(worker: SimWorker, task: str) -> str:
    if task in worker.standby or task in worker.active:
        return "warm"
    return "stale" if task in worker.disk else "cold"


class Simulation:
    def __init__(self, tasks: int, workers: int, standbys: int) -> None:
        app = App(APP_ID, brokers="unused:9092")
        app.stream("input").group_by(lambda key, value: value, name="by-key").count(name="counts")
        topology = app.topology()
        self.partitions = {"input": tasks // 2}
        plan = plan_tasks(topology, self.partitions)
        self.tasks = set(plan.tasks)
        self.stateful = {t for t, p in plan.tasks.items() if p.subtopology.stores}
        self.assignor = TaskAssignor(lambda counts: plan_tasks(topology, counts), lambda: None, standbys)
        self.workers = {f"w{i:04d}": SimWorker(f"w{i:04d}") for i in range(workers)}
        self.live: set[str] = set()

    def rebalance(self, event: str, departed: str | None = None) -> Rebalance:
        owner_before = {t: w.name for w in self.workers.values() for t in w.active}
        if departed is not None:
            self.workers[departed].restart()
        members = {self.workers[w].member_id: self.workers[w] for w in sorted(self.live)}
        subscriptions = {m: worker.subscription() for m, worker in members.items()}
        minimum = minimum_moves({m: w.active for m, w in members.items()}, self.tasks, set(owner_before))
        started = time.perf_counter()
        out = self.assignor.assign(subscriptions, self.partitions)
        seconds = time.perf_counter() - started
        result = {m: TaskAssignment.decode(out[m].user_data) for m in members}
        moved = warm = stale = cold = copies = standby_stale = standby_cold = 0
        for member_id, worker in members.items():
            for task in result[member_id].active:
                if owner_before.get(task) == worker.name:
                    continue
                if task not in owner_before:
                    continue  # never placed before: not a move
                moved += 1
                if task in self.stateful:
                    kind = copy_kind(worker, task)
                    warm += kind == "warm"
                    stale += kind == "stale"
                    cold += kind == "cold"
            for task in result[member_id].standby:
                if task in worker.standby or task not in self.stateful:
                    continue
                copies += 1
                kind = copy_kind(worker, task)
                standby_stale += kind == "stale"
                standby_cold += kind == "cold"
        standby_minimum = self.standby_copies_needed(members, result)
        for member_id, worker in members.items():
            worker.active = set(result[member_id].active)
            worker.standby = {t for t in result[member_id].standby if t in self.stateful} - worker.active
            worker.disk |= (worker.active | worker.standby) & self.stateful
        actives = [len(result[m].active) for m in members]
        standbys = [len(set(result[m].standby) & self.stateful) for m in members]
        return Rebalance(event, seconds, max(actives), min(actives), max(standbys), min(standbys), moved, minimum,
                         warm, stale, cold, copies, standby_minimum, standby_stale, standby_cold)

    def standby_copies_needed(self, members: dict[str, SimWorker], result: dict[str, TaskAssignment]) -> int:
        """At least this many standby copies must be new: a member keeps only copies of tasks it is not
        now running, and at most its fair share of copies."""
        wanted = sum(len(set(a.standby) & self.stateful) for a in result.values())
        share = -(-wanted // len(members)) if members else 0
        keepable = sum(min(len(w.standby - set(result[m].active)), share) for m, w in members.items())
        return max(0, wanted - keepable)

    def leave(self, name: str) -> Rebalance:
        self.live.discard(name)
        return self.rebalance("leave", departed=name)

    def join(self, name: str) -> Rebalance:
        self.live.add(name)
        return self.rebalance("rejoin")


HEADER = ("| event | rebalances | assign median / max (ms) | active per worker | standbys per worker "
          "| active moves (minimum) | moved active: warm / stale / cold | new standby copies (minimum): stale / cold |")


def summarize(label: str, rounds: list[Rebalance]) -> str:
    """One table row; counts are means per rebalance."""
    def mean(attribute: str) -> float:
        return sum(getattr(r, attribute) for r in rounds) / len(rounds)

    seconds = [r.seconds for r in rounds]
    active = f"{min(r.active_min for r in rounds)}..{max(r.active_max for r in rounds)}"
    standby = f"{min(r.standby_min for r in rounds)}..{max(r.standby_max for r in rounds)}"
    return (f"| {label} | {len(rounds)} | {statistics.median(seconds) * 1000:.0f} / {max(seconds) * 1000:.0f} "
            f"| {active} | {standby} | {mean('moved'):.1f} ({mean('minimum'):.1f}) "
            f"| {mean('warm'):.1f} / {mean('stale'):.1f} / {mean('cold'):.1f} "
            f"| {mean('standby_copies'):.1f} ({mean('standby_minimum'):.1f}): "
            f"{mean('standby_stale'):.1f} / {mean('standby_cold'):.1f} |")


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=10_000, help="tasks (half stateless, half stateful)")
    parser.add_argument("--workers", type=int, default=200)
    parser.add_argument("--standbys", type=int, default=1)
    parser.add_argument("--restart-fraction", type=float, default=0.1)
    return parser.parse_args()


def main() -> None:
    args = parse()
    sim = Simulation(args.tasks, args.workers, args.standbys)
    print(f"{len(sim.tasks):,} tasks ({len(sim.stateful):,} stateful), {args.workers} workers, "
          f"{args.standbys} standby per stateful task, rolling restart of {args.restart_fraction:.0%}", flush=True)
    sim.live = set(sim.workers)
    print(HEADER, flush=True)
    print(summarize("join", [sim.rebalance("join")]), flush=True)
    print(summarize("steady", [sim.rebalance("steady")]), flush=True)
    restarted = sorted(sim.workers)[:: max(1, round(1 / args.restart_fraction))]
    leaves, joins = [], []
    for name in restarted:
        leaves.append(sim.leave(name))
        joins.append(sim.join(name))
    print(summarize("leave", leaves), flush=True)
    print(summarize("rejoin", joins), flush=True)
    everything = leaves + joins
    print(f"rolling restart: {sum(r.moved for r in everything)} active moves against a minimum of "
          f"{sum(r.minimum for r in everything)}; slowest assignment {max(r.seconds for r in everything):.3f} s")


if __name__ == "__main__":
    main()
