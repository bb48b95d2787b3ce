"""A task: one sub-topology's processors for one input partition.

A task is synchronous and knows nothing of Kafka clients.  The runtime hands it
batches of raw records; it runs them through its processors and collects the
serialized output records, the next offsets to commit and its stream time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from operator import attrgetter
from typing import Any

from streams.compiler.compile import TaskPlan
from streams.errors import ProcessingError, TopologyError, UnknownTopicError
from streams.gcpause import gc_paused
from streams.metrics import Metrics, TaskMetrics
from streams.partitioner import KeyPartitioner
from streams.processors.agents import AgentProcessor
from streams.processors.api import Processor
from streams.processors.endpoints import Source
from streams.processors.fused import FusedChain
from streams.processors.record_cache import CacheBudget
from streams.processors.stateless import Split
from streams.record import Record
from streams.serdes import Serde
from streams.task.context import TASK
from streams.task.errors_policy import ErrorPolicy
from streams.task.ordering import TaskInputs
from streams.transport.base import OutRecord, RawRecord, TopicPartition

log = logging.getLogger(__name__)

_timestamp = attrgetter("timestamp")

def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class Task:
    """Runs one TaskPlan; also the ProcessorContext of its processors."""

    def __init__(
        self,
        plan: TaskPlan,
        app_id: str,
        partition_counts: Mapping[str, int],
        error_policy: ErrorPolicy,
        stores: Mapping[str, Any] | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], int] = wall_clock_ms,
        max_idle_ms: int = 0,
        cache_budget: CacheBudget | None = None,
        max_future_skew_ms: int = 86_400_000,
    ) -> None:
        self.plan = plan
        self.app_id = app_id
        self.task_id = plan.task_id
        self.partition = plan.partition
        self.partition_counts = partition_counts
        self.error_policy = error_policy
        self.stores = dict(stores or {})
        self.metrics: TaskMetrics = (metrics or Metrics()).for_task(self.task_id)
        self.clock = clock
        self.cache_budget = cache_budget
        self.max_future_skew_ms = max_future_skew_ms
        self.future_limit = self._future_limit()
        self.output: list[OutRecord] = []
        # Records for topics whose size the task does not know yet (chosen per record): placed by
        # place_unplaced() once the runtime has looked the topics up.
        self.unplaced: list[tuple[OutRecord, Record, Callable[[bytes | None, int], int] | None]] = []
        self.offsets: dict[TopicPartition, int] = {}
        self.positions: dict[TopicPartition, int] = {}
        self._stream_time = -1
        self._partitioner = KeyPartitioner()
        self.processors, self.sources = self._instantiate()
        # Tasks of a sub-topology, one per partition: the partition count a key of its stores is placed by.
        self.partitions = max(partition_counts[t] for t in plan.subtopology.source_topics)
        self.agents = [p for p in self.processors if isinstance(p, AgentProcessor)]
        # Records leave in event-time order across partitions; joins need it exactly and hold
        # records back for it (streams/task/ordering.py).
        self.time_ordered = any(node.params.get("time_ordered") for node in plan.subtopology.nodes)
        self.inputs = TaskInputs(plan.inputs, self._read, hold=self.time_ordered, max_idle_ms=max_idle_ms,
                                 spans=any(len(readers) > 1 for readers in self.sources.values()))
        # The input partitions the consumer has read to their end: they hold nothing back (set by the worker).
        self.caught_up: frozenset[TopicPartition] = frozenset()
        # Topics through which its output feeds other tasks, in the order it is sent (streams/task/ordering.py).
        self.repartition_topics = frozenset(node.sink_topic for node in plan.subtopology.nodes
                                            if node.sink_topic and node.internal_topic)
        for processor in self.processors:
            processor.init(self)

    def _instantiate(self) -> tuple[list[Processor], dict[str, list[Source]]]:
        """One processor per node, except that each fused chain becomes one FusedChain (its head's place)."""
        sub = self.plan.subtopology
        inner = {id(node) for chain in sub.chains for node in chain[1:]}
        nodes = [node for node in sub.nodes if id(node) not in inner]
        made = {id(node): node.factory() for node in nodes}
        ends = {}
        for chain in sub.chains:
            made[id(chain[0])] = FusedChain([made[id(chain[0])], *(node.factory() for node in chain[1:])])
            ends[id(chain[0])] = chain[-1]
        for node in nodes:
            processor = made[id(node)]
            processor.children = [made[id(child)] for child in ends.get(id(node), node).children]
            if isinstance(processor, Split):
                processor.branches = {child.branch: made[id(child)] for child in node.children}
        sources: dict[str, list[Source]] = {}
        for node in nodes:
            for topic in node.source_topics:
                sources.setdefault(topic, []).append(made[id(node)])
        return [made[id(node)] for node in nodes], sources

    # ProcessorContext

    @property
    def stream_time(self) -> int:
        return self._stream_time

    def wall_clock_ms(self) -> int:
        return self.clock()

    def _future_limit(self) -> int:
        """The latest timestamp a record may have: max_future_skew past the later of the clock and real time.

        The later of the two, because the TestDriver's clock starts at 0 and would
        make every record stamped with real time look like it came from the future.
        """
        return max(self.clock(), wall_clock_ms()) + self.max_future_skew_ms

    def get_store(self, name: str) -> Any:
        try:
            return self.stores[name]
        except KeyError:
            raise TopologyError(f"task {self.task_id} has no store named {name!r}") from None

    def home_partition(self, key: bytes) -> int:
        """The partition, and so the task of this sub-topology, that a serialized key belongs to."""
        return self._partitioner(key, self.partitions)

    def emit(self, topic: str, records: list[Record], key_serde: Serde, value_serde: Serde,
             partitioner: Callable[[bytes | None, int], int] | None = None) -> None:
        partitions = self.partition_counts.get(topic)
        if not partitions:
            self._emit_unplaced(topic, records, key_serde, value_serde, partitioner)
            return
        hashes: dict[bytes, int] = {}
        if partitioner is not None:
            place = partitioner
        else:
            place, hashes = self._partitioner, self._partitioner.hashes
        new = tuple.__new__
        keys_of = getattr(key_serde, "serialize_many", None)
        values_of = getattr(value_serde, "serialize_many", None)
        if keys_of is not None and values_of is not None:
            try:
                keys = keys_of([r.key for r in records])
                values = values_of([r.value for r in records])
            except Exception:
                pass  # some record cannot be written: the loop below singles it out
            else:
                known = hashes.get
                self.output.extend([
                    new(OutRecord, (topic, place(key, partitions) if (h := known(key)) is None else h % partitions,
                                    key, value, r.timestamp, r.headers))
                    for key, value, r in zip(keys, values, records, strict=True)])
                if self.metrics.recording:
                    self.metrics.incr("records_produced", len(records), topic)
                return
        serialize_key, serialize_value = key_serde.serialize, value_serde.serialize
        append = self.output.append
        before = len(self.output)
        for r in records:
            try:
                key = serialize_key(r.key)
                value = serialize_value(r.value)
            except Exception as exc:
                self.report_error(r, exc, f"sink to {topic}")
                continue
            h = hashes.get(key)
            partition = place(key, partitions) if h is None else h % partitions
            append(new(OutRecord, (topic, partition, key, value, r.timestamp, r.headers)))
        if self.metrics.recording:
            self.metrics.incr("records_produced", len(self.output) - before, topic)

    def _emit_unplaced(self, topic: str, records: list[Record], key_serde: Serde, value_serde: Serde,
                       partitioner: Callable[[bytes | None, int], int] | None) -> None:
        for r in records:
            try:
                key, value = key_serde.serialize(r.key), value_serde.serialize(r.value)
            except Exception as exc:
                self.report_error(r, exc, f"sink to {topic}")
                continue
            self.unplaced.append((OutRecord(topic, -1, key, value, r.timestamp, r.headers), r, partitioner))

    def unplaced_topics(self) -> set[str]:
        return {out.topic for out, _, _ in self.unplaced}

    def place_unplaced(self) -> None:
        """Place the records for topics the task did not know, now that the runtime has looked them up.

        A record for a topic that does not exist goes to the error policy, alone: the
        other records of its batch are unharmed.
        """
        unplaced, self.unplaced = self.unplaced, []
        counts, append = self.partition_counts, self.output.append
        for out, record, partitioner in unplaced:
            partitions = counts.get(out.topic)
            if partitions:
                append(out._replace(partition=(partitioner or self._partitioner)(out.key, partitions)))
            else:
                self.report_error(record, UnknownTopicError(f"topic {out.topic!r} does not exist"),
                                  f"sink to {out.topic}")

    def report_error(self, record: Record | None, exc: BaseException, operator: str) -> None:
        origin = record.origin if record is not None else None
        if isinstance(exc, TopologyError):
            raise exc
        policy = self.error_policy
        if policy.mode == "fail":
            if origin is None:
                raise ProcessingError(operator, "?", self.partition, -1, exc) from exc
            raise ProcessingError(operator, origin.topic, origin.partition, origin.offset, exc) from exc
        if policy.mode == "dlq" and origin is not None:
            self.output.append(policy.dead_letter(origin, exc, operator, self.partition_counts))
            self.metrics.incr("dlq_records", 1, operator)
            self.metrics.incr("records_produced", 1, policy.dlq_topic)
        else:
            self.metrics.incr("skipped_records", 1, operator)
        log.warning("task %s: %s failed on %s: %s: %s", self.task_id, operator,
                    _where(origin), type(exc).__name__, exc)

    # Runtime entry points

    def process(self, batches: Mapping[TopicPartition, list[RawRecord]]) -> None:
        """Run the batches, and records held back before, through the topology; note the next offsets.

        Records below a partition's position were processed already (a consumer
        re-delivers them after a seek) and are skipped.  Records go through in
        event-time order across the task's partitions (streams/task/ordering.py); a
        task with a join may hold some back, and
        process({}) releases them once they are due.
        """
        metrics = self.metrics
        token = TASK.set(self.task_id)
        try:
            if not metrics.recording:
                with gc_paused():
                    self._process(batches)
                return
            started = time.perf_counter()
            with gc_paused():
                processed = self._process(batches)
            if processed:
                metrics.latency.observe(time.perf_counter() - started, processed)
        finally:
            TASK.reset(token)

    def _process(self, batches: Mapping[TopicPartition, list[RawRecord]]) -> int:
        """process() without the timing; returns how many records went through the topology."""
        self.future_limit = self._future_limit()
        positions, inputs = self.positions, self.inputs
        for tp, raws in batches.items():
            if not raws:
                continue
            if tp.topic not in self.sources:
                raise TopologyError(f"task {self.task_id} does not read {tp.topic!r}")
            position = positions.get(tp)
            if position is not None and raws[0].offset < position:
                raws = [r for r in raws if r.offset >= position]
                if not raws:
                    continue
            inputs.add(tp, raws)
            positions[tp] = raws[-1].offset + 1
        newest, processed, sources = self._stream_time, 0, self.sources
        counters, task_id = self.metrics.counters, self.task_id
        for tp, records, raws in inputs.take(self.clock() if inputs.hold else 0, self.caught_up):
            readers = sources[tp.topic]
            if records:
                readers[0].records_in += len(records)  # per-node counts, for the topology page's rates
                readers[0].forward(records)
                latest = max(map(_timestamp, records))
                if latest > newest:
                    newest = latest
                processed += len(records)
                counters[("records_processed", task_id, tp.topic)] += len(records)
            for reader in readers[1:]:  # the topic's other streams and agents read the same raw records
                read = reader.read(raws)
                reader.records_in += len(read)
                reader.forward(read)
        self._stream_time = newest
        self.offsets.update(inputs.advanced())
        return processed

    def _read(self, tp: TopicPartition, raws: list[RawRecord]) -> list[Record]:
        """The records of tp's first reader, whose times order the task's input."""
        records = self.sources[tp.topic][0].read(raws)
        if len(records) < len(raws):
            self.metrics.incr("records_processed", len(raws) - len(records), tp.topic)  # the unreadable ones
        return records

    async def drain_agents(self) -> None:
        """Let agents consume what process() fed them; the one await at the task's edge."""
        for agent in self.agents:
            await agent.drain()

    async def stop_agents(self) -> None:
        """Cancel the agents and wait for them to end; call before close()."""
        for agent in self.agents:
            await agent.stop()

    def punctuate(self) -> None:
        now = self.clock()
        for processor in self.processors:
            processor.punctuate(now)

    def flush_caches(self) -> bool:
        """Forward the record caches' pending updates (step 0 of the commit protocol); True if there is output.

        Processors run in topological order, so what one cache forwards into a
        downstream cache of the same task is flushed by that one in turn.
        """
        with gc_paused():
            for processor in self.processors:
                processor.flush_cache()
        return bool(self.output or self.unplaced)

    def changelog_output(self) -> list[OutRecord]:
        """Pending store changes as changelog records (step 1 of the commit protocol)."""
        out: list[OutRecord] = []
        with gc_paused():  # one record per changed key: see streams/gcpause.py
            for store in self.stores.values():
                records = store.changelog_records(self.partition)
                if records:
                    out.extend(records)
                    self.metrics.incr("records_produced", len(records), records[0].topic)
        return out

    def checkpoint_stores(self, written: Mapping[TopicPartition, int]) -> None:
        """Persist each store's cache with the changelog offset it reached (step 4)."""
        for store in self.stores.values():
            store.commit(written, self.offsets)

    def discard_stores(self) -> None:
        """Drop uncommitted store changes, after an aborted transaction."""
        for processor in self.processors:
            processor.drop_cache()
        for store in self.stores.values():
            store.discard()
        self.offsets.clear()
        self.output.clear()
        self.unplaced.clear()

    def take_output(self) -> list[OutRecord]:
        output, self.output = self.output, []
        return output

    def close(self) -> None:
        for processor in self.processors:
            processor.close()
        for store in self.stores.values():
            store.close()


def _where(origin: RawRecord | None) -> str:
    return "a record" if origin is None else f"{origin.topic}[{origin.partition}]@{origin.offset}"
