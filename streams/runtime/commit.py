"""The commit protocol: the one place that decides when work becomes durable.

A commit covers every task the worker runs, at once:

0. Record caches.  Each task forwards its tables' cached updates, the last
   one per key since the previous commit (docs/state.md, "Record cache"), and
   the runtime queues what they produce like any other output: on the shared
   producer, or under exactly-once in the open transaction (the worker's, or
   the task's own under exactly_once), so they commit or abort with the records
   that caused them.
1. Changelog.  Each task hands over its stores' pending changes, deduplicated
   per key (last write wins), as changelog records; they are queued on the
   producer behind the task's outputs.
2. Flush.  The producer waits until every output and changelog record is
   acknowledged, and reports the last offset written per partition; a send
   error fails the commit here and nothing below happens.
3. Exactly-once only: the tasks' next input offsets join the open transaction
   (send_offsets_to_transaction), and the transaction commits: outputs,
   changelog records and input offsets become visible together, or not at all.
   Under exactly_once_v2 all the worker's tasks share one transaction, and the
   offsets carry the consumer's group metadata: the group coordinator refuses
   them if the group has rebalanced without this worker's generation (a zombie),
   and the commit fails here.  A worker that has no generation at all (its
   membership expired, so the client reset it) refuses to commit: offsets sent
   without a generation are not checked by the coordinator, which would let a
   zombie commit work whose tasks another worker has taken over.  Under exactly_once each task commits its own
   transaction, fenced by the task's transactional id.
4. Local state.  Each task writes its cache to its stores in one batch per
   store, together with the changelog offset that batch reaches (the store's
   checkpoint).  A crash before this step leaves the store at its previous
   checkpoint; restore replays the changelog from there.
5. Input offsets (at-least-once only).  The consumer commits the tasks' next
   offsets.  A crash before this step replays the records since the previous
   commit: at-least-once may apply them twice, never zero times.
6. Exactly-once opens the next transaction lazily, at the next send.

If a step fails, the error propagates and nothing after it happens.  When the
broker failed the request (it is down, restarting or frozen) or fencing refused
it (a task's producer, or this worker's generation), the worker, under either
guarantee, aborts the open transactions, discards the caches, closes its tasks
without committing and rejoins the group: each task restarts from its last
committed offsets and checkpoints (at-least-once may then apply some records
twice), and a task that another worker took over now runs there.  Any other
error (a store that cannot be written) stops the worker, with no offsets
committed past the failed step.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from streams.task.task import Task
from streams.transport.base import Consumer, Producer, TopicPartition

log = logging.getLogger(__name__)


@dataclass
class CommitStats:
    """Commit counts and latencies (the most recent 10,000), for metrics and benchmarks."""

    commits: int = 0
    last_latency_ms: float = 0.0
    total_latency_ms: float = 0.0
    recent_ms: list[float] = field(default_factory=list)

    def record(self, started: float) -> None:
        latency = (time.perf_counter() - started) * 1000
        self.commits += 1
        self.last_latency_ms = latency
        self.total_latency_ms += latency
        if len(self.recent_ms) >= 10_000:
            del self.recent_ms[:5_000]
        self.recent_ms.append(latency)

    def percentile(self, fraction: float) -> float:
        if not self.recent_ms:
            return 0.0
        ordered = sorted(self.recent_ms)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def commit_tasks(
    tasks: Iterable[Task],
    producer_of: Callable[[Task], Producer],
    consumer: Consumer,
    *,
    exactly_once: bool = False,
    producer_per_task: bool = False,
    group_id: str = "",
    stats: CommitStats | None = None,
    send_output: Callable[[list[Task]], Awaitable[None]] | None = None,
) -> dict[TopicPartition, int]:
    """Run the numbered steps above for the given tasks; return the committed input offsets.

    send_output queues the output that step 0 produces; it may close a task (a fenced
    one), so `tasks` may be a live view that is read again after step 0.
    With one producer per task (exactly_once) the tasks commit concurrently, each
    its own transaction, and the first error is raised once every task has
    finished.  Otherwise the tasks share one producer: at-least-once, or the one
    transaction of exactly_once_v2.
    """
    started = time.perf_counter()
    flushed = [task for task in list(tasks) if task.flush_caches()]  # step 0
    if flushed and send_output is not None:
        await send_output(flushed)
    tasks = list(tasks)
    if exactly_once and producer_per_task:
        results = await asyncio.gather(*(_commit_one(task, producer_of(task), group_id) for task in tasks),
                                       return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]
        offsets = {tp: offset for result in results for tp, offset in result.items()}
    else:
        offsets = await _commit_shared(tasks, producer_of(tasks[0]) if tasks else None, consumer, exactly_once)
    if stats is not None:
        stats.record(started)
    return offsets


async def _commit_shared(tasks: list[Task], producer: Producer | None, consumer: Consumer,
                         exactly_once: bool) -> dict[TopicPartition, int]:
    """Steps 1 to 5 over all tasks, which share one producer (and, under exactly_once_v2, one transaction)."""
    if producer is None:
        return {}
    offsets: dict[TopicPartition, int] = {}
    changelog = []
    for task in tasks:  # step 1
        changelog.extend(task.changelog_output())
        offsets.update(task.offsets)
    if changelog:
        await producer.send_many(changelog)
    written = await producer.flush()  # step 2
    if exactly_once:  # step 3
        if offsets:
            await producer.send_offsets_to_transaction(offsets, consumer.group_metadata())
        await producer.commit_transaction()
    for task in tasks:  # step 4
        task.checkpoint_stores(written)
    if offsets and not exactly_once:  # step 5
        await consumer.commit(offsets)
    for task in tasks:
        task.offsets.clear()
    return offsets


async def _commit_one(task: Task, producer: Producer, group_id: str) -> dict[TopicPartition, int]:
    """exactly_once: steps 1 to 4 for one task in its own transaction."""
    changelog = task.changelog_output()  # step 1
    if changelog:
        await producer.send_many(changelog)
    written = await producer.flush()  # step 2
    offsets = dict(task.offsets)
    if offsets:  # step 3
        await producer.send_offsets_to_transaction(offsets, group_id)
    await producer.commit_transaction()
    task.checkpoint_stores(written)  # step 4
    task.offsets.clear()
    return offsets
