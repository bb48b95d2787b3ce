"""The CPU cost of merging repartitioned output by event time, without a broker.

    python -m bench.repartition_order [--partitions 8] [--records 10000] [--rounds 15]

What the tasks of a poll write to repartition topics is merged by event time
before it is sent (streams/task/ordering.py).  This feeds the same polls (one
per round: `--records` records over `--partitions` partitions, event times
interleaved across partitions) through the upstream tasks of a regrouping
pipeline twice, side by side: as the worker runs them, and with the merge left
out.  It reports the best CPU time per record of each and their ratio.
"""

from __future__ import annotations

import argparse
import time

import orjson

from streams import App
from streams.compiler.compile import plan_tasks
from streams.task.errors_policy import ErrorPolicy
from streams.task.ordering import in_send_order, process_poll
from streams.task.task import Task
from streams.transport.base import RawRecord, TopicPartition

BASE = 1_700_000_000_000


def upstream_tasks(partitions: int, merged: bool) -> list[Task]:
    app = App("reorder", brokers="memory://reorder")
    app.stream("in").filter(lambda key, v: v["n"] % 10).map_values(lambda v: {**v, "seen": True}).group_by(
        lambda key, v: v["user"], name="by-user").count()
    plan = plan_tasks(app.topology(), {"in": partitions})
    counts = {**plan.partition_counts, app.config.dlq_topic: 1}
    policy = ErrorPolicy(app.config.on_error, app.config.dlq_topic)
    tasks = [Task(task_plan, app.app_id, counts, policy) for task_plan in plan.tasks.values()
             if "in" in task_plan.subtopology.source_topics]
    if not merged:
        for task in tasks:
            task.repartition_topics = frozenset()
    return tasks


def best_us_per_record(partitions: int, records: int, rounds: int, merged: bool) -> float:
    tasks = upstream_tasks(partitions, merged)
    per_partition = records // partitions
    best = float("inf")
    for round_ in range(rounds):
        work = [(task, {TopicPartition("in", p): [
            RawRecord("in", p, round_ * per_partition + i, BASE + (round_ * per_partition + i) * partitions + p,
                      b"k", orjson.dumps({"n": i, "user": f"u{i % 50}"}), ()) for i in range(per_partition)]})
            for p, task in enumerate(tasks)]
        started = time.process_time()
        in_send_order(process_poll(work))
        best = min(best, time.process_time() - started)
    for task in tasks:
        task.close()
    return best / (per_partition * partitions) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--records", type=int, default=10_000, help="records per poll")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    merged = best_us_per_record(args.partitions, args.records, args.rounds, merged=True)
    unmerged = best_us_per_record(args.partitions, args.records, args.rounds, merged=False)
    print(f"{args.records} records per poll over {args.partitions} partitions: {merged:.2f} us/record merged, "
          f"{unmerged:.2f} without the merge, ratio {merged / unmerged:.2f}")


if __name__ == "__main__":
    main()
