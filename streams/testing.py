"""A synchronous, deterministic driver for unit tests of topologies, and the embedded broker's clean-up.

TestDriver runs the real compiled tasks, the same ones a worker runs, with no
broker: records piped in are routed to the task of their partition, records
written to repartition topics are fed to the downstream tasks at once, and
records written to output topics are kept for read_output().

The driver commits, as a worker does every commit_interval, at the end of each
pipe_input, pipe_raw and advance_wall_clock call, and at the end of a
`with driver.batch():` block (not inside it): the record caches of table outputs
flush there (docs/state.md, "Record cache"), and the stores take their changes.
So a batch is one commit interval, whose tables forward the last update per key.

close_broker(url) drops a memory:// broker (or releases a local:// directory),
for tests that run workers on the embedded broker without the pytest fixture.

Each piped record runs to completion before the next is piped, in pipe order.
A worker reading a backlog sees many records at once instead, and orders them
by event time; inside `with driver.batch():` the driver does the same.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from streams.app import App
from streams.compiler.compile import plan_tasks
from streams.dsl.topic import Topic, declared_topic, serdes_for, topic_name
from streams.metrics import Metrics
from streams.partitioner import KeyPartitioner
from streams.processors.endpoints import Source
from streams.processors.record_cache import CacheBudget
from streams.record import Headers, Record
from streams.runtime.stores import TaskStore
from streams.serdes import SerdeLike, check_serdes
from streams.state.global_store import GLOBAL_KIND, GlobalStore, TaskGlobalStore, global_specs
from streams.state.memory import InMemoryStore
from streams.state.query import StoreView, store_view
from streams.task.errors_policy import ErrorPolicy
from streams.task.ordering import in_send_order, process_poll
from streams.task.task import Task
from streams.transport.base import OutRecord, RawRecord, TopicPartition
from streams.transport.embedded import close_broker

__all__ = ["TestDriver", "close_broker"]


class TestDriver:
    __test__ = False  # not a pytest test class

    def __init__(self, app: App, partitions: Mapping[str, int] | None = None, wall_clock_ms: int = 0) -> None:
        """Compile `app`'s topology and build its tasks; only its config, topology and topics are kept, not the App.

        partitions: topic name -> partition count; declared topics have their declared count, others 1.
        """
        self.config = app.config
        self.topology = app.topology()
        check_serdes(self.topology.serdes())
        self._topics = dict(app.builder.topics)
        self.error_policy = ErrorPolicy(self.config.on_error, self.config.dlq_topic)
        counts = {name: spec.partitions for name, spec in self.topology.declared_topics.items()}
        counts.update(partitions or {})
        for topic in self.topology.external_source_topics:
            counts.setdefault(topic, 1)
        self.plan = plan_tasks(self.topology, counts)
        self.partition_counts: dict[str, int] = dict(self.plan.partition_counts)
        for topic in [*self.topology.external_sink_topics, *counts]:
            self.partition_counts.setdefault(topic, counts.get(topic, 1))
        self.partition_counts.setdefault(self.config.dlq_topic, 1)
        self.wall_clock = wall_clock_ms
        # Records piped to a global table's topic update its one store, which every task reads.
        self.global_stores = {s.name: GlobalStore(s, InMemoryStore(s.name))
                              for s in global_specs(self.topology.stores.values())}
        for store in self.global_stores.values():
            self.partition_counts.setdefault(store.topic, counts.get(store.topic, 1))
        global_views = {name: TaskGlobalStore(store) for name, store in self.global_stores.items()}
        budget = CacheBudget(self.config.cache_max_bytes)
        self.metrics = Metrics(self.config.metrics_recording_level)
        self.tasks = {
            task_id: Task(plan, self.config.app_id, self.partition_counts, self.error_policy,
                          metrics=self.metrics, clock=lambda: self.wall_clock, cache_budget=budget,
                          max_future_skew_ms=int(self.config.max_future_skew * 1000),
                          stores={**{s.name: TaskStore(s, plan.partition, None) for s in plan.subtopology.stores},
                                  **global_views})
            for task_id, plan in self.plan.tasks.items()
        }
        self._offsets: dict[TopicPartition, int] = {}
        self._outputs: dict[str, list[OutRecord]] = {}
        self._partitioner = KeyPartitioner()
        self._loop = asyncio.new_event_loop()
        self._batch: list[OutRecord] | None = None

    def _source(self, topic: str) -> Source:
        for task in self.tasks.values():
            if topic in task.sources:
                return task.sources[topic][0]
        for store in self.global_stores.values():
            if store.topic == topic:
                return store.spec  # has the key and value serdes, like a Source
        raise KeyError(f"no source reads topic {topic!r}")

    def pipe_input(self, topic: str | Topic, key: Any, value: Any, timestamp: int | None = None,
                   headers: Headers = (), partition: int | None = None) -> None:
        """Send one record into the topology and run it, and everything it causes, to completion."""
        source = self._source(topic_name(topic))
        key_bytes, value_bytes = source.key_serde.serialize(key), source.value_serde.serialize(value)
        self.pipe_raw(topic, key_bytes, value_bytes, timestamp, headers, partition)

    def pipe_raw(self, topic: str | Topic, key: bytes | None, value: bytes | None, timestamp: int | None = None,
                 headers: Headers = (), partition: int | None = None) -> None:
        """Send already-serialized bytes (for example, malformed input)."""
        self._deliver(self._placed(topic, key, value, timestamp, headers, partition))
        self._commit()

    def _placed(self, topic: str | Topic, key: bytes | None, value: bytes | None, timestamp: int | None,
                headers: Headers, partition: int | None) -> OutRecord:
        topic = topic_name(topic)
        if partition is None:
            partition = self._partitioner(key, self.partition_counts[topic])
        return OutRecord(topic, partition, key, value, self.wall_clock if timestamp is None else timestamp,
                         tuple(headers))

    def _commit(self) -> None:
        """A commit point: flush the record caches, run what they forward to completion, then the stores.

        Inside a batch() block the commit waits for the block's end.
        """
        if self._batch is not None:
            return
        while flushed := [task for task in self.tasks.values() if task.flush_caches()]:
            for task in flushed:
                for out in self._take_output(task):
                    self._deliver(out)
        for task in self.tasks.values():
            task.changelog_output()
            task.checkpoint_stores({})

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Deliver the records piped inside the block together, as one poll of a worker catching up.

        Nothing runs until the block ends.  Then each task gets its partitions'
        records as one batch, ordered by event time across its partitions, and
        what the tasks write to repartition topics is merged by event time, as in
        a worker: a topology whose results depend on pipe order (for example on
        records of one topic being piped before the older records of another)
        shows it here.  What the batch writes to repartition topics forms the next
        batch, until nothing is left.
        """
        if self._batch is not None:
            raise RuntimeError("driver.batch() blocks do not nest")
        self._batch = []
        try:
            yield
            batch = self._batch
        finally:
            self._batch = None
        while batch:
            batch = self._run_batch(batch)
        self._commit()

    def _run_batch(self, records: list[OutRecord]) -> list[OutRecord]:
        """Run records as one poll; returns what they wrote to topics that tasks read."""
        work: dict[str, dict[TopicPartition, list[RawRecord]]] = {}
        for out in records:
            raw = self._route(out)
            if raw is not None:
                work.setdefault(self.plan.task_of[TopicPartition(out.topic, out.partition)], {}).setdefault(
                    TopicPartition(out.topic, out.partition), []).append(raw)
        tasks = [(self.tasks[task_id], batches) for task_id, batches in work.items()]
        outputs = process_poll(tasks)
        for task, _batches in tasks:
            if task.agents:
                self._loop.run_until_complete(task.drain_agents())
            if task.agents or task.unplaced:
                outputs.append((task, self._take_output(task)))
            task.changelog_output()
            task.checkpoint_stores({})
        following = []
        for out in in_send_order(outputs):
            if self.plan.task_of.get(TopicPartition(out.topic, out.partition)) is None:
                self._route(out)
            else:
                following.append(out)
        return following

    def _route(self, out: OutRecord) -> RawRecord | None:
        """Apply a record to global stores; keep it as output, or return it as the raw record its task reads."""
        tp = TopicPartition(out.topic, out.partition)
        self._apply_global(out)
        if self.plan.task_of.get(tp) is None:
            self._outputs.setdefault(out.topic, []).append(out)
            return None
        offset = self._offsets.get(tp, 0)
        self._offsets[tp] = offset + 1
        return RawRecord(out.topic, out.partition, offset, out.timestamp or 0, out.key, out.value, out.headers)

    def _deliver(self, record: OutRecord) -> None:
        """Run one record, and every record it causes downstream, to completion (no commit)."""
        if self._batch is not None:
            self._batch.append(record)
            return
        pending = [record]
        while pending:
            out = pending.pop(0)
            raw = self._route(out)
            if raw is None:
                continue
            tp = TopicPartition(out.topic, out.partition)
            task = self.tasks[self.plan.task_of[tp]]
            task.process({tp: [raw]})
            if task.agents:
                self._loop.run_until_complete(task.drain_agents())
            pending.extend(self._take_output(task))

    def _take_output(self, task: Task) -> list[OutRecord]:
        """The task's output; a topic first met at run time (a to(function) choice) has one partition here."""
        for topic in task.unplaced_topics():
            self.partition_counts.setdefault(topic, 1)
        task.place_unplaced()
        return task.take_output()

    def _apply_global(self, out: OutRecord) -> None:
        stores = [s for s in self.global_stores.values() if s.topic == out.topic]
        if stores:
            tp = TopicPartition(f"global:{out.topic}", out.partition)
            offset = self._offsets.get(tp, 0)
            self._offsets[tp] = offset + 1
            raw = RawRecord(out.topic, out.partition, offset, out.timestamp or 0, out.key, out.value, out.headers)
            for store in stores:
                store.apply(out.partition, [raw])

    def advance_wall_clock(self, ms: int) -> None:
        """Move wall-clock time forward and punctuate every task."""
        self.wall_clock += ms
        for task in self.tasks.values():
            task.punctuate()
            for out in self._take_output(task):
                self._deliver(out)
        self._commit()

    def read_output(self, topic: str | Topic, key_serde: SerdeLike = None, value_serde: SerdeLike = None, *,
                    key_type: type | None = None, value_type: type | None = None) -> list[Record]:
        """Records written to `topic` since the last read, deserialized, in write order.

        Serdes and types as in App.stream: those given, else the declared topic's, else str keys and JSON values.
        """
        ks, vs = serdes_for(declared_topic(self._topics, topic), key_serde, value_serde, key_type=key_type,
                            value_type=value_type)
        records = self._outputs.pop(topic_name(topic), [])
        return [Record(ks.deserialize(r.key), vs.deserialize(r.value), r.timestamp or 0, r.headers)
                for r in records]

    def read_key_values(self, topic: str | Topic, key_serde: SerdeLike = None, value_serde: SerdeLike = None, *,
                        key_type: type | None = None, value_type: type | None = None) -> list:
        return [(r.key, r.value) for r in self.read_output(topic, key_serde, value_serde, key_type=key_type,
                                                           value_type=value_type)]

    def store(self, name: str) -> StoreView:
        """The named store across all tasks, with keys and values deserialized."""
        spec = self.topology.stores.get(name)
        if spec is None:
            raise KeyError(f"no store named {name!r}")
        if spec.kind == GLOBAL_KIND:
            return store_view(spec, [self.global_stores[name]])
        return store_view(spec, [task.stores[name] for task in self.tasks.values() if name in task.stores])

    def close(self) -> None:
        for task in self.tasks.values():
            if task.agents:
                self._loop.run_until_complete(task.stop_agents())
            task.close()
        for store in self.global_stores.values():
            store.close()
        self._loop.close()

    def __enter__(self) -> TestDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
