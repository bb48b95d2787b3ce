"""The application object: configuration, the topology builder and the decorators."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from streams.compiler.compile import CompiledTopology, compile_topology
from streams.compiler.describe import describe_mermaid, describe_text
from streams.compiler.topology import Node, TopologyBuilder
from streams.dsl.global_table import GlobalTable, add_global_table
from streams.dsl.stream import Stream
from streams.dsl.table import Table
from streams.processors.agents import AgentProcessor
from streams.processors.endpoints import Source, TimestampExtractor
from streams.processors.stateful import TableSource
from streams.runtime.scheduler import Schedule, cron, every
from streams.serdes import SerdeLike, resolve
from streams.state.global_store import GLOBAL_KIND
from streams.state.query import StoreView, store_view
from streams.state.spec import StoreSpec
from streams.task.errors_policy import ErrorPolicy

GUARANTEES = ("at_least_once", "exactly_once")
DEFAULT_BROKERS = "127.0.0.1:9092"


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class App:
    """A stream application: one consumer group, one topology, many workers.

    brokers: bootstrap servers, or "memory://[NAME]" / "local://PATH" for the embedded broker
        (streams.transport.embedded); the STREAMS_BROKERS environment variable overrides it.
    commit_interval: seconds between commits (default 1.0, or 0.1 under exactly-once).
    on_error: "dlq" (default), "skip" or "fail" for records that cannot be processed.
    producer_config / consumer_config: passed through to the Kafka clients.
    max_task_idle: seconds a task with a windowed stream-stream join holds records back while one of
        its input partitions has none buffered, to keep both inputs in timestamp order (docs/joins.md).
    """

    def __init__(
        self,
        app_id: str,
        brokers: str | None = None,
        *,
        processing_guarantee: str = "at_least_once",
        state_dir: str | os.PathLike | None = None,
        commit_interval: float | timedelta | None = None,
        on_error: str = "dlq",
        num_standby_replicas: int = 0,
        producer_config: Mapping[str, Any] | None = None,
        consumer_config: Mapping[str, Any] | None = None,
        poll_max_records: int = 10_000,
        max_task_idle: float | timedelta = 0.5,
    ) -> None:
        if processing_guarantee not in GUARANTEES:
            raise ValueError(f"processing_guarantee must be one of {GUARANTEES}")
        self.app_id = app_id
        self.brokers = os.environ.get("STREAMS_BROKERS") or brokers or DEFAULT_BROKERS
        self.processing_guarantee = processing_guarantee
        self.state_dir = Path(state_dir or os.environ.get("STREAMS_STATE_DIR", ".state"))
        default_interval = 0.1 if processing_guarantee == "exactly_once" else 1.0
        self.commit_interval = _seconds(commit_interval) if commit_interval is not None else default_interval
        self.error_policy = ErrorPolicy(on_error, f"{app_id}-dlq")
        self.num_standby_replicas = num_standby_replicas
        self.producer_config = dict(producer_config or {})
        self.consumer_config = dict(consumer_config or {})
        self.poll_max_records = poll_max_records
        self.max_task_idle = _seconds(max_task_idle)
        self.builder = TopologyBuilder(app_id)
        self.builder.app = self  # lets DSL objects such as windowed tables reach app.store()
        self.schedules: list[Schedule] = []
        self.startup_tasks: list[Callable[[], Any]] = []
        self.worker: Any = None

    @property
    def exactly_once(self) -> bool:
        return self.processing_guarantee == "exactly_once"

    # -- topology

    def stream(self, topics: str | Sequence[str], key_serde: SerdeLike = "str", value_serde: SerdeLike = "json",
               timestamp_extractor: TimestampExtractor | None = None, name: str | None = None) -> Stream:
        """A stream over one or more input topics."""
        topic_list = (topics,) if isinstance(topics, str) else tuple(topics)
        if not topic_list:
            raise ValueError("stream() needs at least one topic")
        ks, vs = resolve(key_serde, "str"), resolve(value_serde, "json")
        node_name = self.builder.new_name("KSTREAM-SOURCE", name)
        node = self.builder.add(Node(node_name, "KSTREAM-SOURCE",
                                     lambda: Source(node_name, ks, vs, timestamp_extractor),
                                     source_topics=topic_list))
        return Stream(self.builder, node, ks, vs)

    def table(self, topic: str, key_serde: SerdeLike = "str", value_serde: SerdeLike = "json",
              name: str | None = None) -> Table:
        """A table read from a compacted topic, which also serves as its changelog."""
        ks, vs = resolve(key_serde, "str"), resolve(value_serde, "json")
        store_name = name or self.builder.new_name("KTABLE-SOURCE-STATE-STORE")
        source = self.stream(topic, ks, vs)
        spec = self.builder.add_store(StoreSpec(store_name, ks, vs, changelog_topic=topic,
                                                options={"source_topic": True}))
        node_name = self.builder.new_name("KTABLE-SOURCE")
        node = self.builder.add(Node(node_name, "KTABLE-SOURCE", lambda: TableSource(node_name, store_name, ks, vs),
                                     stores=(spec,)), source._node)
        return Table(self.builder, node, store_name, ks, vs)

    def global_table(self, topic: str, key_serde: SerdeLike = "str", value_serde: SerdeLike = "json",
                     name: str | None = None) -> GlobalTable:
        """A table of every partition of `topic` on every worker, fully loaded before any task runs.

        Join it with stream.join(global_table, key_mapper, joiner); no co-partitioning needed.
        """
        return add_global_table(self.builder, topic, resolve(key_serde, "str"), resolve(value_serde, "json"), name)

    def topology(self) -> CompiledTopology:
        return compile_topology(self.builder)

    def describe(self, mermaid: bool = False) -> str:
        """The topology's sub-topologies, sources, processors, sinks and stores."""
        topology = self.topology()
        return describe_mermaid(topology) if mermaid else describe_text(topology)

    # -- decorators

    def agent(self, topic: str | Sequence[str], sink: str | None = None, key_serde: SerdeLike = "str",
              value_serde: SerdeLike = "json", name: str | None = None) -> Callable:
        """Run `async def fn(stream)` over a topic; values it yields go to `sink`."""

        def register(fn: Callable) -> Callable:
            stream = self.stream(topic, key_serde, value_serde)
            ks, vs = resolve(key_serde, "str"), resolve(value_serde, "json")
            node_name = self.builder.new_name("AGENT", name or fn.__name__)
            self.builder.add(Node(node_name, "AGENT", lambda: AgentProcessor(node_name, fn, sink, ks, vs),
                                  sink_topic=sink), stream._node)
            return fn

        return register

    def timer(self, interval: float | timedelta, on_leader: bool = False) -> Callable:
        """Run fn every `interval` seconds in each worker (or only the group leader's)."""

        def register(fn: Callable) -> Callable:
            self.schedules.append(Schedule(fn.__name__, fn, every(_seconds(interval)), on_leader))
            return fn

        return register

    def crontab(self, expression: str, timezone: str | None = None, on_leader: bool = False) -> Callable:
        """Run fn at the times a cron expression names, in the given timezone (default UTC)."""

        def register(fn: Callable) -> Callable:
            self.schedules.append(Schedule(fn.__name__, fn, cron(expression, timezone), on_leader))
            return fn

        return register

    def task(self, fn: Callable) -> Callable:
        """Run fn once when the worker starts, before it joins the group."""
        self.startup_tasks.append(fn)
        return fn

    def store(self, name: str) -> StoreView:
        """Query a store of the worker running in this process."""
        spec = self.builder.stores.get(name)
        if spec is None:
            raise KeyError(f"no store named {name!r}; stores: {sorted(self.builder.stores)}")
        if self.worker is None:
            raise RuntimeError("interactive queries need a running worker in this process")
        if spec.kind == GLOBAL_KIND:
            return store_view(spec, [self.worker.global_tables.stores[name]])
        return store_view(spec, [t.stores[name] for t in self.worker.tasks.values() if name in t.stores])

    # -- running

    def transport(self) -> Any:
        """Kafka, or the in-process broker for brokers="memory://[NAME]" or "local://PATH"."""
        from streams.transport.embedded.registry import is_embedded

        if is_embedded(self.brokers):
            from streams.transport.embedded import EmbeddedTransport

            return EmbeddedTransport(self.brokers)
        from streams.transport.kafka import KafkaTransport

        return KafkaTransport(self.brokers)

    def run(self, restore_progress: Callable[[str, int, Any], None] | None = None) -> None:
        """Run a worker in this process until SIGTERM or SIGINT."""
        import asyncio

        from streams.runtime.worker import Worker

        worker = Worker(self)
        worker.restore_progress = restore_progress
        asyncio.run(worker.run())

    def main(self, argv: Sequence[str] | None = None) -> None:
        """Command line entry for a script that defines the app: `python app.py [worker|describe]`."""
        from streams.cli import run_app_command

        run_app_command(self, list(argv) if argv is not None else None)
