"""Operator fusion: a chain of stateless operators runs as one processor, with the same results.

The property test builds random chains of filter, map, map_values, select_key,
flat_map, flat_map_values and peek whose callbacks fail on some records, runs
the same input through a task compiled with fusion and one without, and
compares everything the tasks write: outputs and dead letters, in order.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streams import App
from streams.compiler.compile import compile_topology, plan_tasks
from streams.processors.fused import FusedChain
from streams.task.errors_policy import ErrorPolicy
from streams.task.task import Task
from streams.transport.base import RawRecord, TopicPartition

IN = TopicPartition("in", 0)


def one_task(app: App, fuse: bool) -> Task:
    plan = plan_tasks(compile_topology(app.builder, fuse=fuse), {"in": 1})
    counts = {**plan.partition_counts, "out": 1, "other": 1, app.config.dlq_topic: 1}
    return Task(plan.tasks["0_0"], app.app_id, counts, ErrorPolicy(app.config.on_error, app.config.dlq_topic))


def fails_on(n: int, divisor: int) -> int:
    """A callback's arithmetic that raises ZeroDivisionError for some inputs, like bad data would."""
    return n // (n % divisor)


OPERATORS = {
    "filter": lambda s, d, calls: s.filter(lambda k, v: calls.append("f") or fails_on(v, d) % 2 == 0),
    "filter_not": lambda s, d, calls: s.filter_not(lambda k, v: calls.append("n") or fails_on(v, d) % 3 == 0),
    "map": lambda s, d, calls: s.map(lambda k, v: calls.append("m") or (f"{k}.{v % 5}", v + fails_on(v, d))),
    "map_values": lambda s, d, calls: s.map_values(lambda v: calls.append("v") or v * 2 + fails_on(v, d)),
    "select_key": lambda s, d, calls: s.select_key(lambda k, v: calls.append("s") or str(fails_on(v, d) % 4)),
    "flat_map": lambda s, d, calls: s.flat_map(
        lambda k, v: calls.append("F") or [(k, v), (f"{k}!", v + 1)][:fails_on(v, d) % 3]),
    "flat_map_values": lambda s, d, calls: s.flat_map_values(
        lambda v: calls.append("V") or [v + i for i in range(fails_on(v, d) % 3)]),
    "peek": lambda s, d, calls: s.peek(lambda k, v: calls.append("p") or fails_on(v, d)),
}

chains = st.lists(st.tuples(st.sampled_from(sorted(OPERATORS)), st.integers(2, 7)), min_size=1, max_size=6)
inputs = st.lists(st.integers(0, 200), min_size=0, max_size=80)


def build(chain: list[tuple[str, int]], calls: list, branch_at: int | None) -> App:
    app = App("fusion", brokers="memory://")
    stream = app.stream("in", value_serde="json")
    for index, (operator, divisor) in enumerate(chain):
        stream = OPERATORS[operator](stream, divisor, calls)
        if index == branch_at:
            stream.map_values(lambda v: v).to("other")  # a second child ends the chain here
    stream.to("out")
    return app


def run(chain: list[tuple[str, int]], values: list[int], fuse: bool, branch_at: int | None) -> tuple[list, list]:
    calls: list = []
    task = one_task(build(chain, calls, branch_at), fuse)
    raws = [RawRecord("in", 0, offset, 1000 + offset, f"k{offset}".encode(), str(v).encode(), ())
            for offset, v in enumerate(values)]
    raws.append(RawRecord("in", 0, len(values), 0, b"bad", b"{not json", ()))  # malformed: DLQ at the source
    task.process({IN: raws})
    return task.take_output(), sorted(calls)


@settings(max_examples=150, deadline=None)
@given(chain=chains, values=inputs, branch_at=st.none() | st.integers(0, 5))
def test_fused_and_unfused_chains_write_the_same_outputs_and_dead_letters(chain, values, branch_at):
    fused, fused_calls = run(chain, values, True, branch_at)
    unfused, unfused_calls = run(chain, values, False, branch_at)
    assert fused == unfused
    assert fused_calls == unfused_calls  # each callback once per record that reaches it, fused or not


def test_a_chain_becomes_one_processor_and_a_failing_record_goes_to_the_dlq_alone():
    app = App("fusion", brokers="memory://")
    app.stream("in", value_serde="json").filter(lambda k, v: v > 0).map_values(lambda v: 100 // (v - 3)) \
        .map(lambda k, v: (k.upper(), v)).to("out")
    task = one_task(app, fuse=True)
    fused = [p for p in task.processors if isinstance(p, FusedChain)]
    assert len(fused) == 1 and len(fused[0].steps) == 3
    task.process({IN: [RawRecord("in", 0, i, 0, f"k{i}".encode(), str(v).encode(), ()) for i, v in
                       enumerate([0, 3, 5])]})
    out = task.take_output()
    assert [(r.topic, r.key, r.value) for r in out] == [("fusion-dlq", b"k1", b"3"), ("out", b"K2", b"50")]
    assert dict(out[0].headers)["streams.error.type"] == b"ZeroDivisionError"
    assert dict(out[0].headers)["streams.error.operator"].startswith(b"KSTREAM-MAPVALUES")


def test_branches_merges_and_stateful_operators_bound_the_chains():
    app = App("fusion", brokers="memory://")
    source = app.stream("in", value_serde="json")
    left = source.filter(lambda k, v: v > 0).map_values(lambda v: v + 1)
    right = source.map_values(lambda v: -v).filter(lambda k, v: v < 0)
    left.merge(right).map_values(lambda v: v * 2).peek(lambda k, v: None).to("out")
    chains = compile_topology(app.builder).subtopologies[0].chains
    assert [[node.kind for node in chain] for chain in chains] == [
        ["KSTREAM-FILTER", "KSTREAM-MAPVALUES"], ["KSTREAM-MAPVALUES", "KSTREAM-FILTER"],
        ["KSTREAM-MAPVALUES", "KSTREAM-PEEK"]]
