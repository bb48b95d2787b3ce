"""The worker: runs an application's tasks on a consumer group.

The loop is: poll a batch, split it by task, run each task's part through its
processors, queue all outputs on the producer with one call, and commit on the
commit interval through streams.runtime.commit.  Rebalances create and close
tasks; a revoked task commits first.  SIGTERM and SIGINT finish the batch,
commit and leave the group.

Start-up order: create the declared topics that are missing, run the start-up
tasks (they may send), check every used topic exists and create the internal
ones, load the global tables, join the group.

Newly assigned tasks start in the loop, not in the rebalance callback: aiokafka
sends no heartbeats while that callback runs, so starting producers and
restoring stores there could outlast the session and begin the rebalance again.
Until the loop starts them they wait, their partitions paused.  Under
exactly-once a task also waits while its input offsets are unstable: an older
owner's transaction still holds offsets for them (it crashed or froze
mid-commit), and the loop retries.

A broker that fails for a while (down, restarting, frozen, moving leaders) does
not stop the worker, under either guarantee: it drops the work since its last
commit, closes its tasks and rejoins the group, which restarts them from their
last commit once the broker answers.  Any other error stops it.

With web_port set the worker also runs a web server (streams/runtime/web/),
started before it joins the group so that it can advertise the server's
host:port to the other workers; metrics are kept whether or not anyone reads
them (streams/metrics.py, exported by streams/runtime/prometheus.py).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import signal
import socket
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from rocksdict import Cache

from streams.compiler.compile import CompiledTopology, PhysicalPlan, plan_tasks
from streams.config import StreamsConfig
from streams.errors import GenerationFencedError, TaskFencedError, TimerError, TopologyError, UnsupportedBrokerError
from streams.gcpause import hold_young_threshold, release_young_threshold
from streams.metrics import Metrics, Stopwatch
from streams.partitioner import KeyPartitioner
from streams.processors.record_cache import CacheBudget
from streams.runtime import logcontext
from streams.runtime.assignor import MemberState, TaskAssignor
from streams.runtime.clients import no_such_topics, place
from streams.runtime.commit import CommitStats, commit_tasks
from streams.runtime.global_tables import GlobalTables
from streams.runtime.identity import WorkerId
from streams.runtime.restore import RestoreResult, restore_stores
from streams.runtime.scheduler import Clock, Schedule, Scheduler
from streams.runtime.standby import StandbyTasks
from streams.runtime.state_lock import StateDirLock
from streams.runtime.stores import TaskStore
from streams.runtime.topics import (
    ANY_TIME,
    DLQ_PARTITIONS,
    create_declared_topics,
    internal_topic_problem,
    internal_topic_specs,
    lost_state_error,
    missing_topics_error,
)
from streams.runtime.transactions import TaskTransactions, WorkerTransaction
from streams.serdes import check_serdes
from streams.state.global_store import TaskGlobalStore, global_specs
from streams.state.restore import RestoreProgress
from streams.state.rocksdb import RocksDBConfig
from streams.task.errors_policy import CLOCK_MARGIN_MS, ErrorPolicy
from streams.task.ordering import in_send_order, process_poll
from streams.task.task import Task
from streams.transport.base import OutRecord, RawRecord, TopicInfo, TopicPartition, TopicSpec
from streams.transport.errors import broker_unavailable

log = logging.getLogger(__name__)

# exactly_once_v2: a transaction left open by a worker that died is aborted by the broker after this long,
# unless the worker comes back first; until then its input partitions cannot move to another worker.
TRANSACTION_TIMEOUT_MS = 10_000
WAITING_RETRY_S = 0.2
RECOVERY_BACKOFF_S = 1.0  # between restarts of the tasks while the broker is unavailable
OFFSET_SAMPLE_S = 2.0
"""How often a recording worker looks up the end offsets that its lag figures need."""
DEFAULT_MESSAGE_BYTES = 1048588
"""Kafka's default max.message.bytes, for a topic whose description leaves it out."""
DLQ_HEADROOM = 64 * 1024
"""Room in the dead-letter topic's limit above the largest input record, for the error headers."""
_running: dict[str, list[Worker]] = {}
_numbers = itertools.count(1)


def _message_bytes(info: TopicInfo) -> int:
    return int(info.config.get("max.message.bytes", DEFAULT_MESSAGE_BYTES))


def running_workers(app_id: str) -> list[Worker]:
    """The started workers of an application in this process, for interactive queries."""
    return list(_running.get(app_id, ()))


class Worker:
    """One process's share of an application."""

    def __init__(self, config: StreamsConfig, topology: CompiledTopology, schedules: Sequence[Schedule] = (),
                 startup_tasks: Sequence[Callable[[], Any]] = (), *, transport: Any,
                 clock: Clock | None = None) -> None:
        self.config = config
        self.transport = transport
        self.startup_tasks = list(startup_tasks)
        self.error_policy = ErrorPolicy(config.on_error, config.dlq_topic)
        self.scheduler = Scheduler(clock, fail_on_error=config.on_error == "fail")
        for schedule in schedules:
            self.scheduler.add(schedule)
        self.tasks: dict[str, Task] = {}
        self.name = f"{socket.gethostname()}-{os.getpid()}-{next(_numbers)}"  # in logs, metric labels and web answers
        self.metrics = Metrics(config.metrics_recording_level)
        self.commit_stats = CommitStats()
        self.cache_budget = CacheBudget(config.cache_max_bytes)  # shared by the record caches of all tasks
        self.rebalances = Stopwatch()
        self.restoring: dict[tuple[str, str], RestoreProgress] = {}  # (task, store) -> its latest restore
        self.committed_offsets: dict[TopicPartition, int] = {}
        self.end_offsets: dict[TopicPartition, int] = {}
        self.standby_end_offsets: dict[TopicPartition, int] = {}
        self.web: Any = None
        self.endpoint: str | None = None  # host:port of the web server, advertised to the group
        self.topology = topology
        self.plan: PhysicalPlan | None = None
        self.partition_counts: dict[str, int] = {}
        self.state_topics: list[str] = []  # changelogs and repartition topics, created at start
        self.future_skew_ms = int(self.config.max_future_skew * 1000)  # narrowed at start to what outputs take
        self._check_state = False  # whether the next task start first checks that they still exist
        self.assignor: TaskAssignor | None = None
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._started = asyncio.Event()
        self._assigned = asyncio.Event()
        self._stop_after: int | None = None
        self.event_loop: asyncio.AbstractEventLoop | None = None
        self._last_commit = time.monotonic()
        self._partitioner = KeyPartitioner()
        self.admin = self.producer = self.consumer = self._restore_consumer = self._standby_consumer = None
        self.send_producer: Any = None  # sends from outside tasks; the shared producer unless exactly-once
        self._outbox: list[OutRecord] = []  # placed, waiting for the loop's next turn
        self.standbys: StandbyTasks | None = None
        self.global_tables: GlobalTables | None = None
        self.transactions: TaskTransactions | None = None
        self.worker_id: WorkerId | None = None
        self.waiting: set[str] = set()  # assigned tasks the loop has not started yet
        self._waiting_retry = 0.0
        self.store_config = RocksDBConfig(write_buffer_size=8 << 20, max_write_buffer_number=2,
                                          block_cache=Cache(64 << 20))
        self.restore_results: list[RestoreResult] = []
        self.state_lock = StateDirLock(config)
        self.restore_progress: Callable[[str, int, Any], None] | None = None
        self._isolation_level = "read_committed" if config.exactly_once else "read_uncommitted"
        self._sampler: asyncio.Task[None] | None = None

    # -- lifecycle

    async def run(self, handle_signals: bool = True) -> None:
        """Start, loop until stop(), shut down; SIGTERM and SIGINT stop it unless handle_signals is False."""
        loop = asyncio.get_running_loop()
        handled = []
        for sig in (signal.SIGTERM, signal.SIGINT) if handle_signals else ():
            try:
                loop.add_signal_handler(sig, self.stop)
                handled.append(sig)
            except (NotImplementedError, RuntimeError):
                pass
        clean = False
        try:
            await self.start()
            await self.loop()
            clean = True
        finally:
            for sig in handled:
                loop.remove_signal_handler(sig)
            await self.shutdown(commit=clean)

    def stop(self) -> None:
        """Ask the loop to finish its batch, commit and leave."""
        self._stopping.set()

    def stop_after(self, records: int) -> None:
        """Stop once this worker has processed this many input records (a bounded run)."""
        self._stop_after = records

    async def start(self) -> None:
        self.state_lock.acquire()  # before anything else: a second worker on this folder never half-runs
        hold_young_threshold(self.config.gc_young_threshold)  # streams/gcpause.py
        self.event_loop = asyncio.get_running_loop()
        logcontext.APP_ID.set(self.config.app_id)
        logcontext.WORKER.set(self.name)
        _running.setdefault(self.config.app_id, []).append(self)
        # Serdes that need a service (a schema registry) stop the worker here if it is missing.
        await asyncio.to_thread(check_serdes, self.topology.serdes())
        if self.config.web_port is not None:
            from streams.runtime.web.server import WebServer

            self.web = WebServer(self)
            self.endpoint = await self.web.start()
        self.admin = self.transport.admin()
        await self.admin.start()
        await create_declared_topics(self.admin, self.topology.declared_topics)
        if self.config.producer_per_task:
            self.transactions = TaskTransactions(self.transport, self.config.app_id, self.config.producer_config)
            self.send_producer = self.transport.producer(config=self.config.producer_config)
        elif self.config.exactly_once:
            self.worker_id = WorkerId(self.config.state_path())
            config = {"transaction_timeout_ms": TRANSACTION_TIMEOUT_MS, **self.config.producer_config}
            self.producer = WorkerTransaction(self.transport, f"{self.config.app_id}-{self.worker_id.value}", config)
            await self.producer.start()  # aborts what this worker's crashed incarnation left open
            self.send_producer = self.transport.producer(config=self.config.producer_config)
        else:
            self.producer = self.send_producer = self.transport.producer(config=self.config.producer_config)
        await self.send_producer.start()
        for fn in self.startup_tasks:
            result = fn()
            if asyncio.iscoroutine(result):
                await result
        await self._send_outbox()
        await self.send_producer.flush()  # what start-up tasks sent is written before anything reads it
        self.plan = await self._prepare_topics(self.topology)
        # Global tables load in full before the worker joins the group, so before any task exists.
        self.global_tables = GlobalTables(global_specs(self.topology.stores.values()), self.transport,
                                          self.config, self.store_config)
        await self.global_tables.start(self.admin)
        self.assignor = TaskAssignor(self._plan_for, self._member_state, self.config.num_standby_replicas)
        self._restore_consumer = self.transport.consumer(None, isolation_level="read_committed",
                                                         config=self.config.consumer_config)
        await self._restore_consumer.start()
        self._standby_consumer = self.transport.consumer(None, isolation_level="read_committed",
                                                         config=self.config.consumer_config)
        await self._standby_consumer.start()
        self.standbys = StandbyTasks(self._standby_consumer, self._open_stores)
        self.consumer = self.transport.consumer(self.config.app_id, assignor=self.assignor,
                                                isolation_level=self._isolation_level,
                                                config=self.config.consumer_config)
        self.consumer.subscribe(self.topology.all_source_topics, self)
        self.rebalances.start()  # the first join is a rebalance too; the first assignment ends it
        await self.consumer.start()
        if self.metrics.recording:
            self._sampler = asyncio.create_task(self._sample_offsets_periodically())
        self.scheduler.start()
        self._started.set()
        log.info("worker of %s started with %d tasks in its plan", self.config.app_id, len(self.plan.tasks))

    async def shutdown(self, commit: bool = True) -> None:
        """Leave the group; commit first unless the loop failed (then the last commit stands)."""
        if self._sampler is not None:
            self._sampler.cancel()
            await asyncio.gather(self._sampler, return_exceptions=True)
            self._sampler = None
        try:
            if commit and self.consumer is not None and self.tasks:
                async with self._lock:
                    await self._commit()
        except Exception:
            log.exception("final commit failed; uncommitted records will be processed again")
        if self._outbox and self.send_producer is not None:  # sent from outside tasks: not tied to any offsets
            try:
                await self._send_outbox()
                await self.send_producer.flush()
            except Exception:
                log.exception("sending what timers and scripts sent last failed")
        if self.transactions is not None:
            await self.transactions.close_all(abort=True)
        for task in self.tasks.values():
            await task.stop_agents()
            try:
                task.close()
            except Exception:
                log.exception("closing task %s failed", task.task_id)
        self.tasks.clear()
        await asyncio.sleep(0)  # the cancelled agents finish before the loop may close
        if self.standbys is not None:
            self.standbys.close()
        if self.global_tables is not None:
            try:
                await self.global_tables.stop()
            except Exception:
                log.exception("closing the global tables failed")
        side_producer = self.send_producer if self.send_producer is not self.producer else None
        clients = (self.consumer, self._restore_consumer, self._standby_consumer, self.producer, side_producer,
                   self.admin)
        for client in clients:
            if client is not None:
                try:
                    await client.stop()
                except Exception:
                    log.exception("closing %s failed", type(client).__name__)
        self.consumer = self._restore_consumer = self._standby_consumer = self.producer = self.admin = None
        self.send_producer = None
        self.waiting.clear()
        if self.worker_id is not None:
            self.worker_id.release()
            self.worker_id = None
        if self.web is not None:
            try:
                await self.web.stop()
            except Exception:
                log.exception("stopping the web server failed")
            self.web = None
        workers = _running.get(self.config.app_id, [])
        if self in workers:
            workers.remove(self)
        release_young_threshold(self.config.gc_young_threshold)
        self.state_lock.release()

    async def wait_started(self) -> None:
        await self._started.wait()

    async def wait_assigned(self) -> None:
        """Until the worker has its first assignment from the group (possibly of no tasks)."""
        await self._assigned.wait()

    # -- sending from outside tasks

    async def send(self, records: list[OutRecord]) -> None:
        """Queue records from timers, start-up tasks and scripts for the worker's producer.

        Records without a partition are placed by their key, and a topic that does
        not exist is an error for the caller, now.  The loop hands the queue to the
        producer in one call per turn, and the next commit flushes it.
        """
        if self.send_producer is None:
            raise RuntimeError("the worker is not running")
        self._outbox.extend(await self._place(records))

    async def _send_outbox(self) -> None:
        if self._outbox:
            records, self._outbox = self._outbox, []
            await self.send_producer.send_many(records)

    async def _place(self, records: list[OutRecord]) -> list[OutRecord]:
        unknown = {r.topic for r in records if r.partition < 0 and r.topic not in self.partition_counts}
        if unknown:
            await self._learn_partitions(unknown)
        missing = sorted(t for t in unknown if t not in self.partition_counts)
        if missing:
            raise no_such_topics(missing, "send to")
        return place(records, self.partition_counts, self._partitioner)

    async def _learn_partitions(self, topics: set[str]) -> None:
        """Look up the sizes of topics first met at run time; missing ones stay unknown."""
        info = await self.admin.describe_topics(sorted(topics))
        self.partition_counts.update({t: i.partitions for t, i in info.items() if i is not None})

    # -- topics

    async def _prepare_topics(self, topology: CompiledTopology) -> PhysicalPlan:
        """Check the topics the app uses exist, size and create internal topics."""
        used = {*topology.external_source_topics, *topology.external_sink_topics, *topology.global_table_topics,
                *topology.declared_topics}
        info = await self.admin.describe_topics(sorted(used))
        missing = missing_topics_error(topology, info)
        if missing is not None:
            raise missing
        plan = plan_tasks(topology, {t: (i.partitions if i else None) for t, i in info.items()})
        specs = internal_topic_specs(topology, plan)
        repartition = set(topology.repartition_topics)
        await self._refuse_lost_changelogs([s.name for s in specs if s.name not in repartition], info)
        self.state_topics = [s.name for s in specs]
        if self.error_policy.mode == "dlq":
            largest = max([_message_bytes(i) for i in info.values() if i is not None], default=0)
            dlq_bytes = max(largest, DEFAULT_MESSAGE_BYTES) + DLQ_HEADROOM
            specs.append(TopicSpec(self.error_policy.dlq_topic, DLQ_PARTITIONS,
                                   config={"max.message.bytes": str(dlq_bytes),
                                           "message.timestamp.after.max.ms": str(ANY_TIME)}))
        await self.admin.create_topics(specs)
        found = await self._check_internal_topics(specs)
        if self.error_policy.mode == "dlq":
            self._limit_dead_letters(found[self.error_policy.dlq_topic], dlq_bytes)
        written = [info[t] for t in sorted({*topology.external_sink_topics, *topology.declared_topics})]
        self.future_skew_ms = self._future_skew_ms([*written, *(found[s.name] for s in specs
                                                                if s.name != self.error_policy.dlq_topic)])
        self.partition_counts = dict(plan.partition_counts)
        self.partition_counts.update({t: i.partitions for t, i in info.items() if i})
        self.partition_counts.update({s.name: s.partitions for s in specs if s.name not in self.partition_counts})
        return plan

    async def _refuse_lost_changelogs(self, changelogs: list[str], inputs: Mapping[str, Any]) -> None:
        """A changelog missing while the group has committed input offsets was lost, not never made.

        Creating it empty would start its store from nothing, silently; a new
        application, or one that `streams replay` reset, has its changelogs.
        """
        found = await self.admin.describe_topics(changelogs)
        missing = sorted(name for name, info in found.items() if info is None)
        if not missing:
            return
        partitions = [TopicPartition(t, p) for t in self.topology.external_source_topics
                      for p in range(inputs[t].partitions)]
        committed = await self.admin.committed_offsets(self.config.app_id, partitions)
        if any(offset is not None for offset in committed.values()):
            raise lost_state_error(self.config.app_id, missing, "the application has committed input offsets, so "
                                   "they held state (a store new in this version of the application is built by "
                                   "the same command)")

    async def _check_state_topics(self) -> None:
        """Stop rather than run on: a changelog or repartition topic deleted under the worker lost data."""
        found = await self.admin.describe_topics(self.state_topics)
        missing = sorted(name for name, info in found.items() if info is None)
        if missing:
            raise lost_state_error(self.config.app_id, missing, "they were deleted while the application ran")

    async def _check_internal_topics(self, specs: list[TopicSpec]) -> dict[str, TopicInfo | None]:
        info = await self.admin.describe_topics([s.name for s in specs])
        for spec in specs:
            problem = internal_topic_problem(spec, info.get(spec.name))
            if problem:
                raise TopologyError(problem)
        return info

    def _limit_dead_letters(self, dlq: TopicInfo, wanted: int) -> None:
        """Cut dead letters to what the dead-letter topic and the producer take, so writing one never fails.

        A topic the worker creates takes the largest input record whole, stamped
        with any time; an older or hand-made one may take less, and then larger
        dead letters are truncated, and ones stamped too far ahead restamped.
        """
        limit = _message_bytes(dlq)
        request = self.config.producer_config.get("max_request_size")
        if request is not None:
            limit = min(limit, int(request))
        if limit < wanted:
            log.warning("dead-letter topic %s takes records of up to %d bytes; larger dead letters will be "
                        "truncated (raise its max.message.bytes to %d to keep them whole)",
                        self.error_policy.dlq_topic, limit, wanted)
        ahead = int(dlq.config.get("message.timestamp.after.max.ms", ANY_TIME))
        self.error_policy = replace(self.error_policy, max_record_bytes=limit,
                                    max_ahead_ms=ahead if ahead < ANY_TIME else None)

    def _future_skew_ms(self, written: list[TopicInfo | None]) -> int:
        """max_future_skew, narrowed to what every topic the tasks write to accepts.

        Kafka 4 refuses records stamped more than message.timestamp.after.max.ms (an hour by
        default) ahead of its clock: an output carrying such an input's time would fail every
        commit.  Narrowed, the input goes to the dead-letter topic instead.
        """
        skew = int(self.config.max_future_skew * 1000)
        for info in written:
            ahead = ANY_TIME if info is None else int(info.config.get("message.timestamp.after.max.ms", ANY_TIME))
            if ahead - CLOCK_MARGIN_MS < skew:
                skew = max(0, ahead - CLOCK_MARGIN_MS)
                log.info("max_future_skew narrowed to %d s: topic %s refuses records stamped more than %d s ahead "
                         "(message.timestamp.after.max.ms); later inputs go to the dead-letter topic",
                         skew // 1000, info.name, ahead // 1000)
        return skew

    def _plan_for(self, partitions_per_topic: Mapping[str, int]) -> PhysicalPlan:
        return plan_tasks(self.topology, partitions_per_topic)

    def _member_state(self) -> MemberState:
        """What the assignor needs to keep tasks where their state is.

        A worker joins after its revoked tasks are closed, so it reports the
        active tasks of its last assignment rather than the (now empty) running
        set; and every task directory left on disk as an older copy.
        """
        assignment = self.assignor.assignment if self.assignor is not None else None
        owned = set(assignment.active) if assignment is not None else set()
        standby = self.standbys.task_ids
        root = self.config.state_path()
        on_disk = {p.name for p in root.iterdir() if p.is_dir()} if root.is_dir() else set()
        local = {t for t in on_disk if t in self.plan.tasks} - owned - standby
        return MemberState(owned=sorted(owned), standby=sorted(standby), local=sorted(local),
                           endpoint=self.endpoint or "")

    async def _update_standbys(self) -> None:
        """Follow the changelogs of the standby tasks the leader gave this worker."""
        assignment = self.assignor.assignment if self.assignor is not None else None
        wanted = set(assignment.standby) if assignment is not None else set()
        await self.standbys.update({t for t in wanted - set(self.tasks) - self.waiting if t in self.plan.tasks})

    @property
    def ready(self) -> bool:
        """Every task the group assigned here is restored and running, and no rebalance is under way."""
        if not self._started.is_set() or self._stopping.is_set() or self.rebalances.running:
            return False
        assignment = self.assignor.assignment if self.assignor is not None else None
        return assignment is not None and all(task_id in self.tasks for task_id in assignment.active)

    def standby_lag(self, task_id: str, store_name: str) -> int | None:
        """Changelog records a standby store has not applied yet, as of the last end-offset lookup."""
        store = self.standbys.stores.get(task_id, {}).get(store_name) if self.standbys is not None else None
        if store is None or store.changelog is None:
            return None
        end = self.standby_end_offsets.get(store.changelog)
        position = self.standbys.position(store.changelog)
        if end is None or position is None:
            return None
        return max(0, end - position)

    async def refresh_standby_lag(self, task_id: str, store_name: str) -> None:
        """Look up the end of one standby store's changelog now, so that its lag is current."""
        store = self.standbys.stores.get(task_id, {}).get(store_name) if self.standbys is not None else None
        if store is not None and store.changelog is not None and self.admin is not None:
            self.standby_end_offsets.update(await self.admin.list_offsets([store.changelog], "latest"))

    async def sample_offsets(self) -> None:
        """Look up the end offsets of the input partitions and of the standby changelogs, for lag figures.

        Through the admin client, never the worker's consumers: a lookup on a consumer in the
        middle of a poll or of a standby's reassignment could delay its fetches.
        """
        if self.admin is None:
            return
        inputs = [tp for task in list(self.tasks.values()) for tp in task.plan.inputs]
        if inputs:
            self.end_offsets = await self.admin.list_offsets(inputs, "latest")
        changelogs = self.standbys.partitions() if self.standbys is not None else []
        if changelogs:
            self.standby_end_offsets = await self.admin.list_offsets(changelogs, "latest")

    async def _sample_offsets_periodically(self) -> None:
        while True:
            try:
                await self.sample_offsets()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a rebalance or a deleted topic: the next round tries again
                log.debug("end offset lookup failed: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(OFFSET_SAMPLE_S)

    @property
    def is_leader(self) -> bool:
        if self.assignor is None or self.assignor.assignment is None or self.consumer is None:
            return False
        return self.assignor.assignment.leader == self.consumer.group_metadata().member_id

    # -- rebalance listener

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.rebalances.start()
        async with self._lock:
            gone = self.plan.tasks_for(revoked)
            try:
                await self._commit()  # a broker failure or fencing it handles; anything else stops the worker
            finally:
                for task_id in sorted(gone):
                    await self._close_task(task_id)
                self.waiting -= gone
                for tp in revoked:
                    self.committed_offsets.pop(tp, None)
                    self.end_offsets.pop(tp, None)
            if revoked:
                log.info("revoked %d partitions; %d tasks remain", len(revoked), len(self.tasks))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        # Paused partitions return no records: none can be fetched from a position that
        # the loop, starting the new tasks, is about to replace.
        self.consumer.pause(assigned)
        async with self._lock:
            self.waiting |= self.plan.tasks_for(assigned) - set(self.tasks)
            self._waiting_retry = 0.0  # the loop's next turn starts them
            self._check_state = True
            await self._update_standbys()
            log.info("assigned %d partitions: tasks %s", len(assigned),
                     ", ".join(sorted(self.tasks.keys() | self.waiting)) or "none")
        self.consumer.resume(assigned - {tp for task_id in self.waiting for tp in self.plan.tasks[task_id].inputs})
        self.rebalances.stop()
        self._assigned.set()

    async def _start_tasks(self, task_ids: list[str]) -> None:
        """Position the tasks' inputs at their committed offsets, then create the tasks.

        exactly_once starts each task's producer first, which fences the task's
        older owners: a zombie can no longer commit offsets beyond those read
        here.  Under exactly_once_v2 offsets that an older owner's transaction
        still holds are unstable (KIP-447): their task waits, its partitions
        paused, until that transaction commits or aborts, and the loop retries.
        """
        if self._check_state:  # once per assignment: state topics deleted under the worker stop it
            await self._check_state_topics()
            self._check_state = False
        if self.transactions is not None:  # side by side: each start is a round trip to the broker
            await self.transactions.start_all([t for t in task_ids if t not in self.transactions.by_task])
        unstable = await self.consumer.seek_to_committed_or_reset(
            [tp for task_id in task_ids for tp in self.plan.tasks[task_id].inputs])
        ready = [task_id for task_id in task_ids if not self.plan.tasks[task_id].inputs & unstable]
        self.waiting = (self.waiting | set(task_ids)) - set(ready)
        if unstable:
            log.info("tasks %s wait: an older owner's transaction holds offsets of %d of their partitions",
                     ", ".join(sorted(self.waiting)), len(unstable))
        if ready and self.tasks:
            await self._commit()  # no transaction stays open while the restores below run
            if not self.tasks:
                return  # the commit failed and closed every task; the rejoin restarts them all
        created = await self._create_tasks(ready)
        try:
            for task in created.values():
                for tp in task.plan.inputs:
                    task.positions[tp] = self.committed_offsets[tp] = await self.consumer.position(tp)
        except BaseException:  # a rebalance took a partition meanwhile: these tasks never started
            for task in created.values():
                await task.stop_agents()
                task.close()  # else their stores stay open, and the restart cannot open them again
            raise
        self.tasks.update(created)  # all at once: readers of the tasks' stores never see a part of them

    async def _start_waiting(self) -> None:
        """Start the assigned tasks, or retry those whose input offsets were unstable; resume those started."""
        self._waiting_retry = time.monotonic() + WAITING_RETRY_S
        waiting = sorted(self.waiting)
        await self._start_tasks(waiting)
        started = [task_id for task_id in waiting if task_id in self.tasks]
        if started:
            self.consumer.resume([tp for task_id in started for tp in self.plan.tasks[task_id].inputs])
            log.info("started tasks %s", ", ".join(started))

    async def _close_task(self, task_id: str, abort: bool = False) -> None:
        task = self.tasks.pop(task_id, None)
        if task is not None:
            if abort:
                task.discard_stores()
            await task.stop_agents()
            task.close()
        if self.transactions is not None:
            await self.transactions.close(task_id, abort=abort)

    async def _abandon_all(self) -> None:
        """Drop uncommitted work and restart every task from its last commit, through a rejoin.

        The rejoin, rather than a restart in place, lets the group say which tasks
        this worker still owns: a task that moved on must not fence its new owner.
        """
        for task in self.tasks.values():
            task.discard_stores()
            await task.stop_agents()
            task.close()
        self.tasks.clear()
        if self.transactions is not None:
            await self.transactions.close_all(abort=True)
        self.waiting.clear()
        self.consumer.pause(self.consumer.assignment())
        self.consumer.request_rejoin()
        log.warning("dropped the work since the last commit and closed all tasks; rejoining the group "
                    "to restart them")
        if isinstance(self.producer, WorkerTransaction):  # last: with the broker away it may fail
            await self.producer.discard()

    def _open_stores(self, task_id: str) -> dict[str, TaskStore]:
        plan = self.plan.tasks[task_id]
        return {spec.name: TaskStore(spec, plan.partition, self.config.state_path(task_id, spec.name),
                                     self.store_config, count_reads=self.metrics.debug)
                for spec in plan.subtopology.stores}

    def _restore_listener(self, task_id: str) -> Callable[[str, int, RestoreProgress], None]:
        """Keeps restore progress for the metrics, and passes it on to the CLI's progress bar, if any."""
        done: dict[str, int] = {}

        def listener(store_name: str, partition: int, progress: RestoreProgress) -> None:
            self.restoring[(task_id, store_name)] = progress
            self.metrics.incr("records_restored", progress.restored - done.get(store_name, 0), task_id, store_name)
            done[store_name] = progress.restored
            if self.restore_progress is not None:
                self.restore_progress(store_name, partition, progress)

        return listener

    async def _create_tasks(self, task_ids: list[str]) -> dict[str, Task]:
        """Open the tasks' stores, restore them from their changelogs, then build the tasks."""
        opened: dict[str, dict[str, Any]] = {}
        for task_id in task_ids:
            self.standbys.release(task_id)
            opened[task_id] = self._open_stores(task_id)
        try:
            await self._restore(opened)
        except BaseException:  # a broker failure mid-restore: the stores reopen when the tasks start again
            for stores in opened.values():
                for store in stores.values():
                    store.close()
            raise
        created = {}
        for task_id, stores in opened.items():
            stores.update((name, TaskGlobalStore(store)) for name, store in self.global_tables.stores.items())
            created[task_id] = Task(self.plan.tasks[task_id], self.config.app_id, self.partition_counts,
                                    self.error_policy, stores=stores, metrics=self.metrics,
                                    max_idle_ms=int(self.config.max_task_idle * 1000), cache_budget=self.cache_budget,
                                    max_future_skew_ms=self.future_skew_ms)
        return created

    async def _restore(self, opened: Mapping[str, Mapping[str, TaskStore]]) -> None:
        """Restore the stores of new tasks from their changelogs."""
        # One store after another: restoring them all at once (restore_stores over every store) measured
        # no faster here, and the exactly_once_v2 zombie test failed 2 of 3 runs with it (docs/performance.md).
        for task_id, stores in opened.items():
            token = logcontext.TASK.set(task_id)
            try:
                for store in stores.values():
                    restore_to = None
                    if store.source_topic_changelog and not store.spec.options.get("preload"):
                        # Restored only as far as the task had processed its topic: the task reads the
                        # rest in timestamp order with its other inputs (streams/task/ordering.py).
                        restore_to = {store.changelog: await self.consumer.committed(store.changelog) or 0}
                    self.restore_results.extend(await restore_stores([store], self._restore_consumer,
                                                                     on_progress=self._restore_listener(task_id),
                                                                     restore_to=restore_to))
            finally:
                logcontext.TASK.reset(token)

    # -- the loop

    async def loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await self._step()
            except Exception as exc:
                if not broker_unavailable(exc):
                    raise
                log.warning("the broker is unavailable (%s: %s); restarting the tasks from their last commit",
                            type(exc).__name__, exc)
                try:
                    async with self._lock:
                        await self._abandon_all()
                except Exception as again:  # the broker is still away; the next turn tries again
                    if not broker_unavailable(again):
                        raise
                await asyncio.sleep(RECOVERY_BACKOFF_S)

    async def _step(self) -> None:
        """One turn of the loop: start assigned tasks, poll, process, commit when due, run timers."""
        if self.waiting and time.monotonic() >= self._waiting_retry:
            async with self._lock:
                await self._start_waiting()
        wait_s = self.scheduler.seconds_until_next()
        timeout_ms = 100 if wait_s is None else max(0, min(100, int(wait_s * 1000)))
        batches = await self.consumer.poll(timeout_ms, self.config.poll_max_records)
        if self._outbox:
            async with self._lock:
                await self._send_outbox()
        if self.global_tables.stores:
            await self.global_tables.poll()
        if batches or self._holding():
            async with self._lock:
                await self._process(batches)
            if self._stop_after is not None and self.metrics.get("records_processed") >= self._stop_after:
                self.stop()
        if time.monotonic() - self._last_commit >= self.config.commit_interval:
            async with self._lock:
                await self._punctuate()
                await self._commit()
        if self.scheduler.schedules:
            await self._run_timers()
        if self.standbys.stores:
            await self.standbys.poll()

    async def _run_timers(self) -> None:
        """Fire the due timers; one that fails under on_error="fail" stops the worker, after a commit.

        The records processed so far are not at fault, so their offsets are committed.
        """
        try:
            await self.scheduler.run_due(self.is_leader)
        except TimerError:
            async with self._lock:
                await self._commit()
            raise

    async def _process(self, batches: Mapping[TopicPartition, list[RawRecord]]) -> None:
        """Run a poll through its tasks; what they write to repartition topics goes out merged by event time
        (streams/task/ordering.py)."""
        by_task: dict[str, dict[TopicPartition, list[RawRecord]]] = defaultdict(dict)
        task_of = self.plan.task_of
        recording, counters = self.metrics.recording, self.metrics.counters
        for tp, raws in batches.items():
            task_id = task_of[tp]
            by_task[task_id][tp] = raws
            if recording:
                counters[("records_consumed", task_id, tp.topic)] += len(raws)
        for task_id in self._holding():
            by_task.setdefault(task_id, {})  # records held back for timestamp order may be due now
        work = [(task, task_batches) for task_id, task_batches in by_task.items()
                if (task := self.tasks.get(task_id)) is not None]
        for task, _batches in work:
            if task.inputs.hold:  # a partition read to its end cannot deliver older records now
                task.caught_up = frozenset(await self.consumer.caught_up(task.plan.inputs))
        outputs = process_poll(work)
        for task, _batches in work:
            if task.agents:
                token = logcontext.TASK.set(task.task_id)
                try:
                    await task.drain_agents()
                finally:
                    logcontext.TASK.reset(token)
                outputs.append((task, task.take_output()))
        await self._send_output(outputs)

    def _holding(self) -> list[str]:
        """Tasks holding input records back to keep their partitions in timestamp order."""
        return [task_id for task_id, task in self.tasks.items() if task.inputs.pending]

    async def _punctuate(self) -> None:
        """Give processors wall-clock time (windows close idle partitions) and send what they emit."""
        outputs = []
        for task in list(self.tasks.values()):
            task.punctuate()
            outputs.append((task, task.take_output()))
        await self._send_output(outputs)

    async def _send_flushed(self, tasks: list[Task]) -> None:
        """Queue what the tasks' record caches forwarded at a commit (its step 0)."""
        await self._send_output([(task, task.take_output()) for task in tasks])

    async def _send_output(self, outputs: list[tuple[Task, list[OutRecord]]]) -> None:
        """Queue the tasks' output: all on the worker's producer, repartitioned records merged by event time
        (streams/task/ordering.py), or each task's in its transaction (per-task exactly_once)."""
        tasks = list(dict.fromkeys(task for task, _output in outputs))
        unknown = {topic for task in tasks if task.unplaced for topic in task.unplaced_topics()}
        if unknown:
            if unknown - self.partition_counts.keys():
                await self._learn_partitions(unknown - self.partition_counts.keys())
            for task in tasks:
                if task.unplaced:
                    task.place_unplaced()
                    outputs.append((task, task.take_output()))
        if self.transactions is not None:
            by_task: dict[Task, list[OutRecord]] = {}
            for task, output in outputs:
                if output:
                    by_task.setdefault(task, []).extend(output)
            await asyncio.gather(*(self._send_in_transaction(task, output) for task, output in by_task.items()))
            return
        records = in_send_order(outputs)
        if not records:
            return
        try:
            await self.producer.send_many(records)
        except TaskFencedError:
            if not self.config.exactly_once:
                raise
            log.warning("this worker's transactional producer was fenced; closing its tasks")
            await self._abandon_all()

    async def _send_in_transaction(self, task: Task, output: list[OutRecord]) -> None:
        try:
            await self.transactions.by_task[task.task_id].send_many(output)
        except TaskFencedError:
            log.warning("task %s was fenced: another worker owns it now; closing it", task.task_id)
            await self._close_task(task.task_id, abort=True)

    async def _commit(self) -> None:
        self._last_commit = time.monotonic()
        if self.send_producer is not None:
            await self._send_outbox()
        if self.send_producer is not None and (self.send_producer is not self.producer or not self.tasks):
            await self.send_producer.flush()  # what timers and scripts sent, when no task commit flushes it
        if not self.tasks:
            return
        if self.transactions is not None:
            producer_of = lambda task: self.transactions.by_task[task.task_id]
        else:
            producer_of = lambda task: self.producer
        try:
            self.committed_offsets.update(await commit_tasks(
                self.tasks.values(), producer_of, self.consumer, exactly_once=self.config.exactly_once,
                producer_per_task=self.config.producer_per_task, group_id=self.config.app_id,
                stats=self.commit_stats, send_output=self._send_flushed))
        except Exception as exc:
            # Fencing or a broker failure: the work since the last commit is redone. Any other
            # error (a store that cannot be written, a bug) stops the worker.
            fenced = isinstance(exc, TaskFencedError | GenerationFencedError)
            if isinstance(exc, UnsupportedBrokerError) or not (fenced or broker_unavailable(exc)):
                raise
            log.warning("commit failed, %s%s: %s", "fenced: " if fenced else "", type(exc).__name__, exc)
            await self._abandon_all()
