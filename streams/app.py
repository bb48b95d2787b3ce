"""The application object: configuration, the topology builder and the decorators."""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from streams.compiler.compile import CompiledTopology, compile_topology
from streams.compiler.describe import describe_mermaid, describe_text
from streams.compiler.topology import Node, TopologyBuilder
from streams.config import StreamsConfig
from streams.dsl.global_table import GlobalTable, add_global_table
from streams.dsl.stream import Stream
from streams.dsl.table import Table
from streams.processors.agents import AgentProcessor
from streams.processors.endpoints import Source, TimestampExtractor
from streams.processors.stateful import TableSource
from streams.runtime.query_views import RoutedStoreView
from streams.runtime.scheduler import Clock, Schedule, cron, every
from streams.runtime.worker import Worker, running_workers
from streams.serdes import SerdeLike, bind, resolve, resolve_typed
from streams.state.spec import StoreSpec
from streams.transport.base import Transport
from streams.transport.factory import open_transport


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class App:
    """A stream application: one consumer group, one topology, many workers.

    Settings (see docs/configuration.md) are validated here, into one StreamsConfig
    (app.config); a STREAMS_<SETTING> environment variable overrides the argument.
    brokers: "host:port[,host:port]", "kafka://...", "memory://[NAME]" or "local://PATH".
    commit_interval: seconds between commits (default 1.0, or 0.1 under exactly-once).
    on_error: "dlq" (default), "skip" or "fail" for records that cannot be processed.
    producer_config / consumer_config: passed through to the Kafka clients.
    max_task_idle: seconds a task with a windowed stream-stream join holds records back while one of
        its input partitions has none buffered, to keep both inputs in timestamp order (docs/joins.md).
    security_protocol, ssl_context, sasl_mechanism, sasl_plain_username, sasl_plain_password: reach every
        Kafka client, the admin client included.
    web_port, web_host, web_advertised_host: the worker's web server (off unless web_port is set; 0 picks a
        free port), its bind address (default 127.0.0.1) and the host other workers reach it at (docs/operations.md).
    metrics_recording_level: "info" (default), "debug" (adds per-read cache hit counts) or "off".
    """

    def __init__(
        self,
        app_id: str,
        brokers: str | None = None,
        *,
        processing_guarantee: str | None = None,
        state_dir: str | os.PathLike | None = None,
        commit_interval: float | timedelta | None = None,
        on_error: str | None = None,
        num_standby_replicas: int | None = None,
        producer_config: Mapping[str, Any] | None = None,
        consumer_config: Mapping[str, Any] | None = None,
        poll_max_records: int | None = None,
        max_task_idle: float | timedelta | None = None,
        security_protocol: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        sasl_mechanism: str | None = None,
        sasl_plain_username: str | None = None,
        sasl_plain_password: str | None = None,
        web_port: int | None = None,
        web_host: str | None = None,
        web_advertised_host: str | None = None,
        metrics_recording_level: str | None = None,
    ) -> None:
        self.config = StreamsConfig.build(app_id, {
            "brokers": brokers, "processing_guarantee": processing_guarantee, "state_dir": state_dir,
            "commit_interval": commit_interval, "on_error": on_error, "num_standby_replicas": num_standby_replicas,
            "producer_config": producer_config, "consumer_config": consumer_config,
            "poll_max_records": poll_max_records, "max_task_idle": max_task_idle,
            "security_protocol": security_protocol, "ssl_context": ssl_context, "sasl_mechanism": sasl_mechanism,
            "sasl_plain_username": sasl_plain_username, "sasl_plain_password": sasl_plain_password,
            "web_port": web_port, "web_host": web_host, "web_advertised_host": web_advertised_host,
            "metrics_recording_level": metrics_recording_level,
        })
        self.builder = TopologyBuilder(app_id)
        self.schedules: list[Schedule] = []
        self.startup_tasks: list[Callable[[], Any]] = []

    @property
    def app_id(self) -> str:
        return self.config.app_id

    def configure(self, **settings: Any) -> None:
        """Override settings after the app is defined, as command-line flags do: these win over everything else."""
        self.config = self.config.with_overrides(**settings)

    # -- topology

    def stream(self, topics: str | Sequence[str], key_serde: SerdeLike = None, value_serde: SerdeLike = None,
               timestamp_extractor: TimestampExtractor | None = None, name: str | None = None, *,
               key_type: type | None = None, value_type: type | None = None) -> Stream:
        """A stream over one or more input topics.

        key_serde / value_serde: "str" and "json" by default, or a serde object (e.g. AvroSerde).
        key_type / value_type: a dataclass, msgspec.Struct or pydantic model; callbacks get instances,
            a record that does not validate goes to the DLQ, and sinks write the declared type.
        """
        topic_list = (topics,) if isinstance(topics, str) else tuple(topics)
        if not topic_list:
            raise ValueError("stream() needs at least one topic")
        ks = resolve_typed(key_serde, key_type, "str", "key_type")
        vs = resolve_typed(value_serde, value_type, "json", "value_type")
        if len(topic_list) == 1:
            ks, vs = bind(ks, topic_list[0], True), bind(vs, topic_list[0], False)
        node_name = self.builder.new_name("KSTREAM-SOURCE", name)
        node = self.builder.add(Node(node_name, "KSTREAM-SOURCE",
                                     lambda: Source(node_name, ks, vs, timestamp_extractor),
                                     source_topics=topic_list, serdes=(ks, vs)))
        return Stream(self.builder, node, ks, vs)

    def table(self, topic: str, key_serde: SerdeLike = None, value_serde: SerdeLike = None,
              name: str | None = None, *, key_type: type | None = None, value_type: type | None = None) -> Table:
        """A table read from a compacted topic, which also serves as its changelog.

        The serdes and types are those of stream().
        """
        store_name = name or self.builder.new_name("KTABLE-SOURCE-STATE-STORE")
        source = self.stream(topic, key_serde, value_serde, key_type=key_type, value_type=value_type)
        ks, vs = source.key_serde, source.value_serde
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
            if sink is not None:
                ks, vs = bind(ks, sink, True), bind(vs, sink, False)
            node_name = self.builder.new_name("AGENT", name or fn.__name__)
            self.builder.add(Node(node_name, "AGENT", lambda: AgentProcessor(node_name, fn, sink, ks, vs),
                                  sink_topic=sink, serdes=(ks, vs)), stream._node)
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

    def store(self, name: str) -> RoutedStoreView:
        """Query a store: a key's lookup is answered by whichever worker holds the key (docs/operations.md).

        It needs a worker of this app running in this process; keys held by workers in other processes
        are asked of their web servers, so those need web_port.  Scans cover this process's tasks only.
        """
        spec = self.builder.stores.get(name)
        if spec is None:
            raise KeyError(f"no store named {name!r}; stores: {sorted(self.builder.stores)}")
        if not running_workers(self.app_id):
            raise RuntimeError("interactive queries need a running worker of this app in this process")
        return RoutedStoreView(self.app_id, spec)

    # -- running

    def transport(self) -> Transport:
        """Kafka, or the in-process broker for brokers="memory://[NAME]" or "local://PATH"."""
        return open_transport(self.config)

    def create_worker(self, transport: Transport | None = None, clock: Clock | None = None) -> Worker:
        """A worker of this app, not yet started: `await worker.run()` runs it until stop()."""
        return Worker(self.config, self.topology(), self.schedules, self.startup_tasks,
                      transport=transport or self.transport(), clock=clock)

    def run(self, restore_progress: Callable[[str, int, Any], None] | None = None) -> None:
        """Run a worker in this process until SIGTERM or SIGINT."""
        import asyncio

        worker = self.create_worker()
        worker.restore_progress = restore_progress
        asyncio.run(worker.run())

    def main(self, argv: Sequence[str] | None = None) -> None:
        """Command line entry for a script that defines the app: `python app.py [worker|describe]`."""
        from streams.cli import run_app_command

        run_app_command(self, list(argv) if argv is not None else None)
