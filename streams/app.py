"""The application object: configuration, topics, the topology builder, the decorators and running."""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from streams.compiler.compile import CompiledTopology, compile_topology
from streams.compiler.describe import describe_mermaid, describe_text
from streams.compiler.topology import Node, TopologyBuilder
from streams.config import StreamsConfig
from streams.dsl.agent_table import AgentTable, tables_used
from streams.dsl.global_table import GlobalTable, add_global_table
from streams.dsl.stream import Stream
from streams.dsl.table import Table, versioned_table
from streams.dsl.topic import (
    HeadersLike,
    Topic,
    bound_serdes,
    declared_topic,
    normalize_headers,
    serdes_for,
    topic_name,
)
from streams.processors.agents import AgentProcessor, current_agent
from streams.processors.endpoints import Source, TimestampExtractor
from streams.processors.stateful import TableSource
from streams.running import Run, running
from streams.runtime.clients import send_records
from streams.runtime.query_views import RoutedStoreView, query_view
from streams.runtime.scheduler import Clock, Schedule, cron, every
from streams.runtime.worker import Worker, running_workers
from streams.serdes import Serde, SerdeLike, bind
from streams.state.spec import StoreSpec
from streams.transport.base import OutRecord, Transport
from streams.transport.factory import open_transport
from streams.windows.definitions import Duration, to_ms


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class App:
    """A stream application: one consumer group, one topology, many workers.

    Settings (see docs/configuration.md) are validated here, into one StreamsConfig
    (app.config); a STREAMS_<SETTING> environment variable overrides the argument.
    brokers: "host:port[,host:port]", "kafka://...", "memory://[NAME]" or "local://PATH".
    processing_guarantee: "at_least_once" (default); "exactly_once_v2", exactly-once with one transactional
        producer per worker, fenced by the consumer group's generation (brokers 2.5 and later); or
        "exactly_once", exactly-once with one transactional producer per task, for older brokers
        (docs/exactly-once.md).
    commit_interval: seconds between commits (default 1.0, or 0.1 under exactly-once).
    on_error: "dlq" (default), "skip" or "fail" for records that cannot be processed.
    producer_config / consumer_config: passed through to the Kafka clients.
    max_task_idle: seconds a task with a join holds records back while one of its input partitions has
        none buffered, to keep its inputs in timestamp order (docs/joins.md).
    cache_max_bytes: the record cache of table outputs, per worker (default 0, off; 10 MiB is a good start):
        updates of a key between commits reach downstream once, with the last value (docs/state.md).
    max_future_skew: how far past wall-clock time a record's timestamp may be (default one day); a record
        beyond it goes to the error policy instead of moving stream time years ahead.
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
        cache_max_bytes: int | None = None,
        max_future_skew: float | timedelta | None = None,
        security_protocol: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        sasl_mechanism: str | None = None,
        sasl_plain_username: str | None = None,
        sasl_plain_password: str | None = None,
        web_port: int | None = None,
        web_host: str | None = None,
        web_advertised_host: str | None = None,
        metrics_recording_level: str | None = None,
        gc_young_threshold: int | None = None,
    ) -> None:
        self.config = StreamsConfig.build(app_id, {
            "brokers": brokers, "processing_guarantee": processing_guarantee, "state_dir": state_dir,
            "commit_interval": commit_interval, "on_error": on_error, "num_standby_replicas": num_standby_replicas,
            "producer_config": producer_config, "consumer_config": consumer_config,
            "poll_max_records": poll_max_records, "max_task_idle": max_task_idle,
            "cache_max_bytes": cache_max_bytes,
            "max_future_skew": max_future_skew,
            "security_protocol": security_protocol, "ssl_context": ssl_context, "sasl_mechanism": sasl_mechanism,
            "sasl_plain_username": sasl_plain_username, "sasl_plain_password": sasl_plain_password,
            "web_port": web_port, "web_host": web_host, "web_advertised_host": web_advertised_host,
            "metrics_recording_level": metrics_recording_level, "gc_young_threshold": gc_young_threshold,
        })
        self.builder = TopologyBuilder(app_id)
        self.schedules: list[Schedule] = []
        self.startup_tasks: list[Callable[[], Any]] = []
        self._agents: list[tuple[Node, Callable, tuple[AgentTable, ...]]] = []
        self._send_serdes: dict[tuple[str, int], tuple[Serde, Serde]] = {}

    @property
    def app_id(self) -> str:
        return self.config.app_id

    def configure(self, **settings: Any) -> None:
        """Override settings after the app is defined, as command-line flags do: these win over everything else."""
        self.config = self.config.with_overrides(**settings)

    # -- topics

    def topic(self, name: str, partitions: int | None = None, replication: int | None = None,
              config: Mapping[str, Any] | None = None, *, key_serde: SerdeLike = None,
              value_serde: SerdeLike = None, key_type: type | None = None, value_type: type | None = None) -> Topic:
        """Declare a topic: the worker creates it at start if it is missing (see streams.Topic).

        Declaring the same name again with the same settings returns the same Topic.
        """
        topic = Topic(name, partitions, replication, config, key_serde=key_serde, value_serde=value_serde,
                      key_type=key_type, value_type=value_type, sender=self.send)
        return declared_topic(self.builder.topics, topic) or topic

    def _reader_serdes(self, topics: Sequence[str | Topic], key_serde: SerdeLike, value_serde: SerdeLike,
                       key_type: type | None = None, value_type: type | None = None) -> tuple[Serde, Serde]:
        """Serdes for reading topics: those given, else those their declarations name, else str and JSON."""
        declared = [d for d in (declared_topic(self.builder.topics, t) for t in topics) if d is not None]
        if any(d.serdes != declared[0].serdes for d in declared):
            raise ValueError(f"topics {', '.join(d.name for d in declared)} are declared with different serdes; "
                             "read them with one app.stream() each")
        return serdes_for(declared[0] if declared else None, key_serde, value_serde, key_type=key_type,
                          value_type=value_type)

    async def send(self, topic: str | Topic, key: Any = None, value: Any = None, *, headers: HeadersLike = None,
                   timestamp: int | None = None) -> None:
        """Write one record to a topic, from an agent, a timer, a crontab, a start-up task or a script.

        Keys and values are written with the declared topic's serdes (str keys and JSON values for a topic
        not declared) and placed by the key's murmur2 hash.  Inside an agent the record joins the task's
        output: under exactly-once it commits or aborts with the offsets of the record being processed,
        whose timestamp it takes unless one is given.  Elsewhere it goes through the producer of this app's
        worker when one runs in this event loop (its next commit flushes it), or through a producer of its
        own that is flushed before send() returns.
        """
        name = topic_name(topic)
        ks, vs = self._serdes_to_send(topic)
        agent = current_agent()
        if agent is not None and agent.context.app_id == self.app_id:
            agent.send(name, key, value, ks, vs, normalize_headers(headers), timestamp)
            return
        record = OutRecord(name, -1, ks.serialize(key), vs.serialize(value), timestamp, normalize_headers(headers))
        worker = self._worker_in_this_loop()
        if worker is not None:
            await worker.send([record])
        else:
            await send_records(self.config, self._declared_specs(), [record])

    def _serdes_to_send(self, topic: str | Topic) -> tuple[Serde, Serde]:
        """A topic's serdes bound to it, once per declaration: binding a registry serde is not free."""
        key = (topic_name(topic), id(declared_topic(self.builder.topics, topic)))
        found = self._send_serdes.get(key)
        if found is None:
            found = self._send_serdes[key] = bound_serdes(self.builder.topics, topic)
        return found

    def _declared_specs(self) -> dict[str, Any]:
        """The declared topics as the runtime creates them."""
        return {name: topic.spec for name, topic in self.builder.topics.items()}

    def _worker_in_this_loop(self) -> Worker | None:
        loop = asyncio.get_running_loop()
        return next((w for w in running_workers(self.app_id)
                     if w.event_loop is loop and w.send_producer is not None), None)

    # -- topology

    def stream(self, topics: str | Topic | Sequence[str | Topic], key_serde: SerdeLike = None,
               value_serde: SerdeLike = None, timestamp_extractor: TimestampExtractor | None = None,
               name: str | None = None, *, key_type: type | None = None, value_type: type | None = None) -> Stream:
        """A stream over one or more input topics.

        key_serde / value_serde: a serde name or object (e.g. AvroSerde); by default the declared topic's,
            else "str" keys and "json" values.
        key_type / value_type: a dataclass, msgspec.Struct or pydantic model; callbacks get instances,
            a record that does not validate goes to the DLQ, and sinks write the declared type.
        Any number of streams and agents may read one topic; each gets every record once, in order.
        """
        topic_list = (topics,) if isinstance(topics, (str, Topic)) else tuple(topics)
        if not topic_list:
            raise ValueError("stream() needs at least one topic")
        return self._stream(topic_list, key_serde, value_serde, timestamp_extractor, name, key_type, value_type,
                            check_future=True)

    def _stream(self, topic_list: tuple[str | Topic, ...], key_serde: SerdeLike, value_serde: SerdeLike,
                timestamp_extractor: TimestampExtractor | None, name: str | None, key_type: type | None,
                value_type: type | None, check_future: bool) -> Stream:
        """stream(), and the source of a table, which lets records from the future through (see Source)."""
        names = tuple(topic_name(t) for t in topic_list)
        ks, vs = self._reader_serdes(topic_list, key_serde, value_serde, key_type, value_type)
        if len(names) == 1:
            ks, vs = bind(ks, names[0], True), bind(vs, names[0], False)
        node_name = self.builder.new_name("KSTREAM-SOURCE", name)
        node = self.builder.add(Node(node_name, "KSTREAM-SOURCE",
                                     lambda: Source(node_name, ks, vs, timestamp_extractor, check_future),
                                     source_topics=names, serdes=(ks, vs)))
        return Stream(self.builder, node, ks, vs)

    def table(self, topic: str | Topic, key_serde: SerdeLike = None, value_serde: SerdeLike = None,
              name: str | None = None, *, key_type: type | None = None, value_type: type | None = None,
              versioned: Duration | None = None, preload: bool = False) -> Table:
        """A table read from a compacted topic, which also serves as its changelog.

        The serdes and types are those of stream().  versioned=timedelta(...) keeps each
        key's history for that long, so that a stream joined with it finds the row as of
        each stream record's time (docs/state.md).  Otherwise the table follows its topic as
        the task processes it: in a join, in timestamp order with the other input, and a
        restarted task restores it up to the offset it had processed (Kafka Streams' rules);
        preload=True restores the whole topic before the task processes anything, so that the
        first stream records already see every row (docs/joins.md).
        """
        retention = None if versioned is None else to_ms(versioned, "versioned")
        if retention == 0:
            raise ValueError("versioned must be a positive duration (how long history is kept), got 0 ms")
        store_name = name or self.builder.new_name("KTABLE-SOURCE-STATE-STORE")
        source = self._stream((topic,), key_serde, value_serde, None, None, key_type, value_type, check_future=False)
        ks, vs = source.key_serde, source.value_serde
        if retention is not None:
            return versioned_table(self.builder, source._node, store_name, ks, vs, retention)
        spec = self.builder.add_store(StoreSpec(store_name, ks, vs, changelog_topic=topic_name(topic),
                                                options={"source_topic": True, "preload": bool(preload)}))
        node_name = self.builder.new_name("KTABLE-SOURCE")
        node = self.builder.add(Node(node_name, "KTABLE-SOURCE", lambda: TableSource(node_name, store_name, ks, vs),
                                     stores=(spec,)), source._node)
        return Table(self.builder, node, store_name, ks, vs)

    def global_table(self, topic: str | Topic, key_serde: SerdeLike = None, value_serde: SerdeLike = None,
                     name: str | None = None) -> GlobalTable:
        """A table of every partition of `topic` on every worker, fully loaded before any task runs.

        Join it with stream.join(global_table, key_mapper, joiner); no co-partitioning needed.
        """
        ks, vs = bound_serdes(self.builder.topics, topic, key_serde, value_serde)
        return add_global_table(self.builder, topic_name(topic), ks, vs, name)

    def agent_table(self, name: str, default: Callable[[], Any] | None = None, *, key_serde: SerdeLike = None,
                    value_serde: SerdeLike = None) -> AgentTable:
        """A table that agents read and write like a dict (see streams.AgentTable), kept in a RocksDB store
        with a changelog, partitioned like the input of the agents that use it."""
        return AgentTable(self.builder, name, default, key_serde, value_serde)

    def topology(self) -> CompiledTopology:
        # Agent tables join the sub-topology of the agents that use them: named in tables=, or
        # referred to by the agent's function (bound now, when every module-level name exists).
        for node, fn, tables in self._agents:
            node.stores = tuple({id(t.spec): t.spec for t in (*tables, *tables_used(fn))}.values())
        return compile_topology(self.builder)

    def describe(self, mermaid: bool = False) -> str:
        """The topology's sub-topologies, sources, processors, sinks and stores."""
        topology = self.topology()
        return describe_mermaid(topology) if mermaid else describe_text(topology)

    # -- decorators

    def agent(self, topic: str | Topic | Sequence[str | Topic], sink: str | Topic | None = None,
              key_serde: SerdeLike = None, value_serde: SerdeLike = None, name: str | None = None,
              tables: Sequence[AgentTable] = ()) -> Callable:
        """Run `async def fn(stream)` over a topic, once per partition; values it yields go to `sink`.

        The agent may send to any topic (topic.send / app.send) and use agent tables: those it names
        through a global or enclosing variable, and those listed in `tables`.
        """

        def register(fn: Callable) -> Callable:
            stream = self.stream(topic, key_serde, value_serde)
            sink_name = None if sink is None else topic_name(sink)
            ks, vs = self._reader_serdes([topic] if isinstance(topic, (str, Topic)) else topic, key_serde, value_serde)
            if sink is not None:
                ks, vs = bound_serdes(self.builder.topics, sink, fallback=(ks, vs))
            node_name = self.builder.new_name("AGENT", name or fn.__name__)
            node = self.builder.add(Node(node_name, "AGENT", lambda: AgentProcessor(node_name, fn, sink_name, ks, vs),
                                         sink_topic=sink_name, serdes=(ks, vs)), stream._node)
            self._agents.append((node, fn, tuple(tables)))
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

    def store(self, name: str) -> RoutedStoreView | Any:
        """Query a store: a key's lookup is answered by whichever worker holds the key (docs/operations.md).

        It needs a worker of this app running in this process; keys held by workers in other processes
        are asked of their web servers, so those need web_port.  Scans cover this process's tasks only.
        """
        spec = self.builder.stores.get(name)
        if spec is None:
            raise KeyError(f"no store named {name!r}; stores: {sorted(self.builder.stores)}")
        if not running_workers(self.app_id):
            raise RuntimeError("interactive queries need a running worker of this app in this process")
        return query_view(self.app_id, spec)

    # -- running

    def transport(self) -> Transport:
        """Kafka, or the in-process broker for brokers="memory://[NAME]" or "local://PATH"."""
        return open_transport(self.config)

    def create_worker(self, transport: Transport | None = None, clock: Clock | None = None) -> Worker:
        """A worker of this app, not yet started: `await worker.run()` runs it until stop()."""
        return Worker(self.config, self.topology(), self.schedules, self.startup_tasks,
                      transport=transport or self.transport(), clock=clock)

    def run(self, timeout: float | None = None, count: int | None = None,
            restore_progress: Callable[[str, int, Any], None] | None = None) -> None:
        """Run a worker in this process until SIGTERM or SIGINT, blocking.

        A bounded run stops (committing, as on SIGTERM) after `timeout` seconds, or once it
        has processed `count` input records, whichever comes first.
        """
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout: must be a positive number of seconds, got {timeout!r}")
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
            raise ValueError(f"count: must be a whole number of at least 1, got {count!r}")

        async def bounded() -> None:
            worker = self.create_worker()
            worker.restore_progress = restore_progress
            if count is not None:
                worker.stop_after(count)
            if timeout is not None:
                asyncio.get_running_loop().call_later(timeout, worker.stop)
            await worker.run()

        asyncio.run(bounded())

    def running(self, ready_timeout: float = 30.0) -> contextlib.AbstractAsyncContextManager[Run]:
        """`async with app.running() as run:` a worker in this event loop (see streams.Run), stopped on exit.

        The block starts once the worker has joined its group.
        """
        return running(self, ready_timeout)

    def main(self, argv: Sequence[str] | None = None) -> None:
        """Command line entry for a script that defines the app: `python app.py [worker|describe]`."""
        from streams.cli import run_app_command

        run_app_command(self, list(argv) if argv is not None else None)
