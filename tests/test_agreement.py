"""Agreement: the TestDriver, a worker on the in-process broker and a worker on Kafka compute the same results.

Hypothesis draws a topology (a chain of filter, map, map_values, flat_map and a
dividing step that fails on some records, then a group_by or group_by_key with
an aggregation, a windowed count of any kind in either emit mode, a stream-table
join or a windowed stream-stream join, then more stateless steps and perhaps a
second grouping) and its inputs (keys, timestamps near now with some disorder,
and a few poison records: bad JSON, a value without the field the steps read, a
null value and a timestamp in 9999; table rows that cannot be read).  Each case
runs through the TestDriver and through real workers; the outputs (bytes, in
order), the stores' contents and the dead letters must agree.

Inputs are shaped so that the order of processing is defined the same way for
all three: one partition per topic, or two where nothing repartitions (then
outputs are compared key by key); table rows are processed before the stream
records that look them up; the two inputs of a stream-stream join are in their
topics before the worker starts, keep their keys up to the join and never share
a timestamp, so the worker's event-time order across them is the order the
driver is given.  The record cache is off (cache_max_bytes=0): with it a worker
forwards a table's last update per key per commit, by design, and the driver
every update.

Not drawn: timestamp extractors, keys that are not strings, times near the
epoch.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from streams import App, JoinWindows, Stream
from streams.partitioner import partition_for
from streams.testing import TestDriver
from streams.transport import OutRecord, TopicPartition, TopicSpec
from streams.transport.embedded import close_broker
from streams.windows import Hopping, Session, Sliding, Tumbling
from tests.conftest import unique_name

KEYS = ("a", "b", "d", "f")  # two on each partition of a two-partition topic
END_OF_TIME = 253402214400000  # 9999-12-31: beyond any max_future_skew
BAD_JSON = b"{oops"
ANY_TIME = str((1 << 63) - 1)  # message.timestamp.after.max.ms that lets the poison record into Kafka
BASE = int(time.time() * 1000) // 60_000 * 60_000 - 600_000
FAST = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 500}
LOGICAL = ("in", "right", "tbl", "out")
MAX_TASK_IDLE = 1.5  # generous: a worker must not give up waiting for the other join input on a busy machine


# -- cases


@dataclass(frozen=True)
class Step:
    kind: str  # filter, map_key, map_values, flat_map, divide
    m: int


@dataclass(frozen=True)
class Terminal:
    kind: str  # none, aggregate, window, table_join, stream_join
    group: str = "key"  # aggregate and window: "key" (group_by_key) or "mod" (group_by n % 3)
    agg: str = "count"  # aggregate: count, sum, max
    window: tuple = ()  # window: (kind, *params)
    emit: str = "update"
    join: str = "inner"  # inner, left, outer (stream_join only)
    join_window: tuple[int, int, int] = (0, 0, 0)  # before, after, grace in ms
    regroup: bool = False  # then group the results by n % 2 and count them (a second repartition)


@dataclass(frozen=True)
class Input:
    key: str
    value: bytes | None
    timestamp: int


@dataclass(frozen=True)
class Case:
    steps: tuple[Step, ...]
    terminal: Terminal
    after: tuple[Step, ...]
    left: tuple[Input, ...]
    other: tuple[Input, ...] = ()  # the right stream, or the table's rows
    partitions: int = 1  # of every input topic; two only where no step or grouping changes the key

    def partition(self, record: Input) -> int:
        return partition_for(record.key.encode(), self.partitions)

    def pipe_order(self) -> list[tuple[str, Input]]:
        """The order every runner processes in: table rows first; two joined streams merged by timestamp.

        Tasks are independent, so with two partitions the driver gets partition 0's
        records, then partition 1's.
        """
        if self.terminal.kind == "table_join":
            return [("tbl", r) for r in self.other] + [("in", r) for r in self.left]
        if self.terminal.kind != "stream_join":
            return [("in", r) for r in self.left]
        order = []
        for partition in range(self.partitions):
            order += self._merge([r for r in self.left if self.partition(r) == partition],
                                 [r for r in self.other if self.partition(r) == partition])
        return order

    @staticmethod
    def _merge(passing: list[Input], other: list[Input]) -> list[tuple[str, Input]]:
        # Records that meet nothing at the join go as soon as they are next in their topic: those
        # its source cannot read or finds from the future go to the DLQ as they are read, before
        # the worker orders the rest.
        left = [(r, not ordered(r)) for r in passing]
        right = [(r, not ordered(r)) for r in other]
        merged, i, j = [], 0, 0
        while i < len(left) or j < len(right):
            if i < len(left) and left[i][1]:
                take_left = True
            elif j < len(right) and right[j][1]:
                take_left = False
            else:
                take_left = j == len(right) or (i < len(left) and left[i][0].timestamp < right[j][0].timestamp)
            if take_left:
                merged.append(("in", left[i][0]))
                i += 1
            else:
                merged.append(("right", right[j][0]))
                j += 1
        return merged


STEP = st.builds(Step, st.sampled_from(["filter", "map_key", "map_values", "flat_map", "divide"]),
                 st.integers(2, 5))
WINDOWS = st.one_of(
    st.tuples(st.just("tumbling"), st.sampled_from([2_000, 5_000]), st.sampled_from([0, 1_000, 3_000])),
    st.tuples(st.just("hopping"), st.sampled_from([4_000, 6_000]), st.sampled_from([2_000, 3_000]),
              st.sampled_from([0, 2_000])),
    st.tuples(st.just("sliding"), st.sampled_from([1_000, 3_000]), st.sampled_from([0, 2_000])),
    st.tuples(st.just("session"), st.sampled_from([1_000, 2_500]), st.sampled_from([0, 2_000])),
)
REGROUP = st.sampled_from([False, False, True])
TERMINALS = st.one_of(
    st.builds(Terminal, st.just("none")),
    st.builds(Terminal, st.just("aggregate"), group=st.sampled_from(["key", "mod"]),
              agg=st.sampled_from(["count", "sum", "max"]), regroup=REGROUP),
    st.builds(Terminal, st.just("window"), group=st.sampled_from(["key", "mod"]), window=WINDOWS,
              emit=st.sampled_from(["update", "final"])),
    st.builds(Terminal, st.just("table_join"), join=st.sampled_from(["inner", "left"]), regroup=REGROUP),
    st.builds(Terminal, st.just("stream_join"), join=st.sampled_from(["inner", "left", "outer"]),
              join_window=st.tuples(st.sampled_from([0, 1_000, 3_000]), st.sampled_from([0, 2_000]),
                                    st.sampled_from([0, 1_000])), regroup=REGROUP),
)
GOOD = ["ok"] * 14
POISON = ["bad_json", "no_n", "null", "future"]


@st.composite
def stream_inputs(draw: st.DrawFn, parity: int, poison: bool, max_size: int) -> tuple[Input, ...]:
    """Records of one topic; timestamps even (parity 0) or odd (parity 1), so two topics never tie."""
    records = []
    for i in range(draw(st.integers(1, max_size))):
        kind = draw(st.sampled_from(GOOD + POISON if poison else GOOD))
        disorder = draw(st.sampled_from([0, 0, 0, 0, -1_500, -4_000, 700]))
        timestamp = BASE + 2 * (i * 400 + disorder) + parity
        n = draw(st.integers(0, 12))
        value = {"ok": orjson.dumps({"n": n}), "bad_json": BAD_JSON, "no_n": orjson.dumps({"m": n}),
                 "null": None, "future": orjson.dumps({"n": n})}[kind]
        records.append(Input(draw(st.sampled_from(KEYS)), value,
                             END_OF_TIME if kind == "future" else timestamp))
    return tuple(records)


@st.composite
def cases(draw: st.DrawFn, max_size: int = 40) -> Case:
    terminal = draw(TERMINALS)
    # Before a stream-stream join the steps keep the key: a repartition topic, written while the
    # worker runs, would make which input reaches the join first a matter of timing.
    step = STEP.filter(lambda s: s.kind not in ("map_key", "flat_map")) if terminal.kind == "stream_join" else STEP
    steps = tuple(draw(st.lists(step, max_size=3)))
    after = tuple(draw(st.lists(STEP, max_size=2))) if terminal.kind != "window" else ()
    left = draw(stream_inputs(0, True, max_size))
    other: tuple[Input, ...] = ()
    if terminal.kind == "stream_join":
        other = draw(stream_inputs(1, True, max_size // 2))
    elif terminal.kind == "table_join":
        rows = draw(st.lists(st.tuples(st.sampled_from(KEYS + ("a0", "b1", "d2")), st.integers(-1, 9)),
                             min_size=1, max_size=8))
        other = tuple(Input(k, orjson.dumps({"n": n}) if n >= 0 else BAD_JSON, BASE - 60_000 + i)
                      for i, (k, n) in enumerate(rows))
    keeps_keys = (not any(step.kind in ("map_key", "flat_map") for step in steps) and terminal.group == "key"
                  and not terminal.regroup)
    partitions = draw(st.sampled_from([1, 2])) if keeps_keys else 1
    return Case(steps, terminal, after, left, other, partitions)


# -- the topology of a case


def zeros(*timestamps: int) -> tuple[Input, ...]:
    return tuple(Input("a", b'{"n":0}', t) for t in timestamps)


def _step(stream: Stream, step: Step) -> Stream:
    m = step.m
    if step.kind == "filter":
        return stream.filter(lambda k, v: v["n"] % m != 0)
    if step.kind == "map_key":
        return stream.map(lambda k, v: (f"{k[0]}{v['n'] % m}", v))
    if step.kind == "map_values":
        return stream.map_values(lambda v: {"n": v["n"] * m + 1})
    if step.kind == "flat_map":
        return stream.flat_map(lambda k, v: [(k, {"n": v["n"] + i}) for i in range(v["n"] % m)])
    return stream.map_values(lambda v: {"n": 1000 // (v["n"] % m)})  # divide: fails where n % m == 0


def _chain(stream: Stream, steps: tuple[Step, ...]) -> Stream:
    for step in steps:
        stream = _step(stream, step)
    return stream


def _window(spec: tuple) -> Any:
    kind, *params = spec
    if kind == "tumbling":
        return Tumbling(params[0], grace=params[1])
    if kind == "hopping":
        return Hopping(params[0], advance=params[1], grace=params[2])
    if kind == "sliding":
        return Sliding(params[0], grace=params[1])
    return Session(params[0], grace=params[1])


def _nums(left: Any, right: Any) -> dict:
    return {"n": (left["n"] if left is not None else 0) * 100 + (right["n"] if right is not None else 0)}


def build(app: App, topics: dict[str, str], case: Case) -> None:
    term = case.terminal
    stream = _chain(app.stream(topics["in"]), case.steps)
    if term.kind in ("aggregate", "window"):
        grouped = stream.group_by(lambda k, v: f"g{v['n'] % 3}") if term.group == "mod" else stream.group_by_key()
        if term.kind == "window":
            window = _window(term.window)
            grouped.window(window).count(name="wcount", emit=term.emit).to(topics["out"])
            return
        if term.agg == "count":
            stream = grouped.count(name="agg").to_stream().map_values(lambda n: {"n": n})
            _regrouped(_chain(stream, case.after), term.regroup).to(topics["out"])
            return
        if term.agg == "sum":
            table = grouped.aggregate(lambda: {"n": 0}, lambda k, v, a: {"n": a["n"] + v["n"]}, name="agg")
        else:
            table = grouped.reduce(lambda a, b: a if a["n"] >= b["n"] else b, name="agg")
        stream = table.to_stream()
    elif term.kind == "table_join":
        table = app.table(topics["tbl"], name="tbl")
        join = stream.join if term.join == "inner" else stream.left_join
        stream = join(table, _nums)
    elif term.kind == "stream_join":
        before, after, grace = term.join_window
        window = JoinWindows(before=before, after=after, grace=grace)
        right = app.stream(topics["right"])
        join = {"inner": stream.join, "left": stream.left_join, "outer": stream.outer_join}[term.join]
        stream = join(right, _nums, window=window)
    _regrouped(_chain(stream, case.after), term.regroup).to(topics["out"])


def _regrouped(stream: Stream, regroup: bool) -> Stream:
    if not regroup:
        return stream
    return stream.group_by(lambda k, v: f"h{v['n'] % 2}").count(name="agg2").to_stream()


def ordered(record: Input) -> bool:
    """Whether the worker's source lets the record into the join's timestamp order."""
    return record.value != BAD_JSON and record.timestamp != END_OF_TIME


def store_names(case: Case) -> list[str]:
    kind = case.terminal.kind
    names = {"aggregate": ["agg"], "window": ["wcount"], "table_join": ["tbl"]}.get(kind, [])
    return names + (["agg2"] if case.terminal.regroup else [])


# -- what is compared


@dataclass
class Result:
    outputs: list[tuple]
    dead: list[tuple]
    stores: dict[str, list[tuple]]
    processed: int = 0
    notes: list[str] = field(default_factory=list)


def dead_letter(key: bytes | None, value: bytes | None, timestamp: int, headers, rename: Callable[[str], str]) -> tuple:
    found = dict(headers)
    return (key, value, timestamp, rename(found["streams.error.topic"].decode()), found["streams.error.partition"],
            found["streams.error.offset"], found["streams.error.operator"], found["streams.error.type"])


def store_contents(view: Any) -> list[tuple]:
    if "window" in view.spec.options:  # a windowed store (every routed view offers fetch_all)
        return sorted(((w.key, w.start, w.end, orjson.dumps(v)) for w, v in view.fetch_all()), key=repr)
    return sorted(((k, orjson.dumps(v)) for k, v in view.items()), key=repr)


def renamer(app_id: str, topics: dict[str, str]) -> Callable[[str], str]:
    logical = {physical: name for name, physical in topics.items()}

    def rename(topic: str) -> str:
        return logical.get(topic, topic.replace(app_id, "APP", 1))

    return rename


def run_driver(case: Case) -> Result:
    app_id = "agree-driver"
    app = App(app_id, brokers="memory://unused", cache_max_bytes=0)
    topics = {name: name for name in LOGICAL}
    build(app, topics, case)
    with TestDriver(app, partitions=dict.fromkeys(("in", "right", "tbl"), case.partitions)) as driver:
        for topic, record in case.pipe_order():
            driver.pipe_raw(topic, record.key.encode(), record.value, record.timestamp)
        rename = renamer(app_id, topics)
        outputs = [(r.key, r.value, r.timestamp) for r in driver.read_output("out", "bytes", "bytes")]
        dead = sorted((dead_letter(r.key, r.value, r.timestamp, r.headers, rename)
                       for r in driver.read_output(app.config.dlq_topic, "bytes", "bytes")), key=repr)
        stores = {name: store_contents(driver.store(name)) for name in store_names(case)}
        processed = sum(task.metrics.get("records_processed") for task in driver.tasks.values())
    return Result(outputs, dead, stores, processed)


async def run_worker(case: Case, url: str, state_dir, expected_processed: int) -> Result:
    kind = "kafka" if "://" not in url else "memory"
    topics = {name: unique_name(f"agree-{name}") for name in LOGICAL}
    app = App(unique_name(f"agree-{kind}"), state_dir=state_dir, commit_interval=0.1, consumer_config=FAST,
              max_task_idle=MAX_TASK_IDLE, cache_max_bytes=0)
    app.configure(brokers=url)
    build(app, topics, case)
    transport = app.transport()
    admin = transport.admin()
    await admin.start()
    await admin.create_topics([TopicSpec(t, 1 if name == "out" else case.partitions,
                                         config={"message.timestamp.after.max.ms": ANY_TIME})
                               for name, t in topics.items()])
    await admin.stop()
    # Every record is in its topic before the worker starts (so a join's task waits for both inputs
    # and merges them by time), except that stream records wait until the table rows are processed.
    order = case.pipe_order()
    rows, rest = [(t, r) for t, r in order if t == "tbl"], [(t, r) for t, r in order if t != "tbl"]
    await _produce(transport, topics, rows if rows else rest, case)
    worker = app.create_worker()
    runner = asyncio.create_task(_run(worker))
    notes: list[str] = []
    try:
        if rows:
            await _until(lambda: worker.metrics.get("records_processed") >= len(rows) or runner.done(), 30)
            await _produce(transport, topics, rest, case)
        if not await _until(lambda: worker.metrics.get("records_processed") >= expected_processed
                            or runner.done(), 30):
            notes.append(f"{kind}: processed {worker.metrics.get('records_processed')} of {expected_processed}")
        commits = worker.commit_stats.commits
        await _until(lambda: worker.commit_stats.commits >= commits + 2 or runner.done(), 10)
        if runner.done():
            runner.result()
        stores = {name: store_contents(app.store(name)) for name in store_names(case)}
        processed = worker.metrics.get("records_processed")
    finally:
        worker.stop()
        await asyncio.wait_for(runner, 30)
    rename = renamer(app.app_id, topics)
    outputs = [(r.key, r.value, r.timestamp) for r in await _read(transport, topics["out"])]
    dead = sorted((dead_letter(r.key, r.value, r.timestamp, r.headers, rename)
                   for r in await _read(transport, app.config.dlq_topic)), key=repr)
    return Result(outputs, dead, stores, processed, notes)


async def _run(worker: Any) -> None:
    clean = False
    try:
        await worker.start()
        await worker.loop()
        clean = True
    finally:
        await worker.shutdown(commit=clean)


async def _produce(transport: Any, topics: dict[str, str], records: list[tuple[str, Input]], case: Case) -> None:
    if not records:
        return
    producer = transport.producer()
    await producer.start()
    try:
        await producer.send_many([OutRecord(topics[t], case.partition(r), r.key.encode(), r.value, r.timestamp, ())
                                  for t, r in records])
        await producer.flush()
    finally:
        await producer.stop()


async def _read(transport: Any, topic: str) -> list:
    consumer = transport.consumer(None, isolation_level="read_committed")
    await consumer.start()
    tp = TopicPartition(topic, 0)
    records: list = []
    try:
        consumer.assign([tp])
        await consumer.seek_to_committed_or_reset([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        deadline = time.monotonic() + 15
        while await consumer.position(tp) < end and time.monotonic() < deadline:
            for batch in (await consumer.poll(200)).values():
                records.extend(batch)
    finally:
        await consumer.stop()
    return records


async def _until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


def by_key(outputs: list[tuple]) -> dict[bytes | None, list[tuple]]:
    keyed: dict[bytes | None, list[tuple]] = {}
    for key, *rest in outputs:
        keyed.setdefault(key, []).append(tuple(rest))
    return keyed


def assert_agree(case: Case, reference: Result, others: dict[str, Result]) -> None:
    for kind, result in others.items():
        assert not result.notes, result.notes
        assert result.processed == reference.processed, f"{kind} processed a different number of records"
        assert by_key(result.outputs) == by_key(reference.outputs), f"{kind} outputs differ from the TestDriver's"
        if case.partitions == 1:  # with two, the tasks' outputs interleave in no set order
            assert result.outputs == reference.outputs, f"{kind} output order differs from the TestDriver's"
        assert result.dead == reference.dead, f"{kind} dead letters differ from the TestDriver's"
        assert result.stores == reference.stores, f"{kind} stores differ from the TestDriver's"


def run_case(case: Case, tmp_path, kafka: str | None) -> None:
    reference = run_driver(case)
    memory = f"memory://agree-{uuid.uuid4().hex[:8]}"
    state = tmp_path / uuid.uuid4().hex[:8]

    async def workers() -> dict[str, Result]:
        runs = {"memory": run_worker(case, memory, state / "memory", reference.processed)}
        if kafka is not None:
            runs["kafka"] = run_worker(case, kafka, state / "kafka", reference.processed)
        results = await asyncio.gather(*runs.values())
        return dict(zip(runs, results, strict=True))

    try:
        assert_agree(case, reference, asyncio.run(workers()))
    finally:
        close_broker(memory)


PROPERTY = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                          HealthCheck.too_slow, HealthCheck.data_too_large])


@settings(PROPERTY, max_examples=40)
@given(case=cases())
@example(case=Case((), Terminal("stream_join", join_window=(1_000, 0, 0)), (),
                   zeros(BASE, END_OF_TIME, BASE + 2_000), zeros(BASE + 1, BASE + 1_001, BASE + 2_401)))
@example(case=Case((Step("map_key", 2),), Terminal("window", window=("session", 2_500, 0)), (),
                   zeros(*(BASE + t for t in (0, 800, 1_600, 4_800, 2_600)))))  # bridges a closed session
def test_the_driver_and_a_memory_worker_agree(case, tmp_path):
    run_case(case, tmp_path, None)


@settings(PROPERTY, max_examples=30)  # about two seconds each: a minute of the suite
@given(case=cases(max_size=16))
def test_the_driver_and_workers_on_memory_and_kafka_agree(case, tmp_path, brokers):
    run_case(case, tmp_path, brokers)


@pytest.mark.parametrize("terminal", [
    Terminal("window", group="mod", window=("session", 2_500, 0), emit="final"),
    Terminal("stream_join", join="outer", join_window=(1_000, 0, 0)),
    Terminal("table_join", join="left"),
])
def test_one_case_of_each_kind_of_state_on_memory(terminal, tmp_path):
    """Fixed cases, so that each kind of state runs in every suite run whatever hypothesis draws."""
    left = tuple(Input(KEYS[i % 4], orjson.dumps({"n": i}), BASE + 2 * i * 500) for i in range(12))
    poison = (Input("a", BAD_JSON, BASE + 13_000), Input("b", orjson.dumps({"n": 1}), END_OF_TIME))
    other: tuple[Input, ...] = ()
    if terminal.kind == "stream_join":
        other = tuple(Input(KEYS[i % 3], orjson.dumps({"n": i}), BASE + 2 * i * 700 + 1) for i in range(8))
    elif terminal.kind == "table_join":
        other = (Input("a", orjson.dumps({"n": 5}), BASE - 1), Input("c", orjson.dumps({"n": 7}), BASE))
    run_case(Case((Step("divide", 5),), terminal, (), left + poison, other), tmp_path, None)
