"""Joins agree with Kafka Streams on generated input (tests/oracle_support.py).

Per seed: two streams joined within JoinWindows (inner, left and outer; seed 1 uses a time
difference of 5 s and a grace of 2 s, other seeds draw them, some with different before and
after), a stream joined with a table (inner and left), and two tables joined (inner, left and
outer).  Inputs have 20 keys over several partitions, out-of-order and late records, and
tombstones in the tables; the stream-stream inputs end with a record far in the future on every
partition.  Kafka Streams' results are compared as multisets with those of a streams app on the
worker and on the TestDriver: (key, value, timestamp), where a result's value is "left|right".
"""

from __future__ import annotations

import random

import pytest

from streams.windows import JoinWindows
from tests.oracle_support import (
    BASE,
    KEYS,
    Differential,
    Sources,
    Topic,
    Topology,
    close_everything,
    difference_report,
    event_times,
    joiner,
    seeds,
)

STREAM_RECORDS = 1_600
TABLE_RECORDS = 800
TOMBSTONES = 0.15


def join_params(seed: int) -> dict[str, int]:
    if seed == 1:
        return {"before": 5_000, "after": 5_000, "grace": 2_000}
    rng = random.Random(seed * 7907)
    difference = rng.choice([1_000, 5_000])
    params = {"before": difference, "after": difference, "grace": rng.choice([0, 2_000])}
    if rng.random() < 0.5:
        params["after"] = rng.choice([0, 2_000, 8_000])
    return params


def two_sides(rng: random.Random, first: Topic, second: Topic, count: int, tombstones: float = 0.0) -> None:
    """Records spread over both topics at random, the first's timestamps even and the second's odd."""
    for i, t in enumerate(event_times(rng, count, step=2)):
        left = rng.random() < 0.5
        topic = first if left else second
        value = None if tombstones and rng.random() < tombstones else f"{'LR'[not left]}{i}"
        topic.add(rng.choice(KEYS), value, BASE + t + (0 if left else 1))


def topologies(p: dict[str, int]) -> list[Topology]:
    window = JoinWindows(p["before"], p["after"], grace=p["grace"])
    oracle_params = {"difference": p["before"], "before": p["before"], "after": p["after"], "grace": p["grace"]}

    def stream_stream(kind: str):
        def build(sources: Sources, output: str) -> None:
            left, right = sources.stream("left"), sources.stream("right")
            {"inner": left.join, "left": left.left_join}.get(kind, left.outer_join)(
                right, joiner, window=window).to(output)
        return build

    def stream_table(kind: str):
        def build(sources: Sources, output: str) -> None:
            stream, table = sources.stream("stream"), sources.table("table")
            (stream.join if kind == "inner" else stream.left_join)(table, joiner).to(output)
        return build

    def table_table(kind: str):
        def build(sources: Sources, output: str) -> None:
            left, right = sources.table("tleft"), sources.table("tright")
            {"inner": left.join, "left": left.left_join}.get(kind, left.outer_join)(right, joiner).to(output)
        return build

    made = []
    for kind in ("inner", "left", "outer"):
        made.append(Topology(f"stream-stream-{kind}", f"join-{kind}", ("left", "right"), oracle_params,
                             stream_stream(kind), windowed=False))
    for kind in ("inner", "left"):
        made.append(Topology(f"stream-table-{kind}", f"stream-table-{kind}", ("stream", "table"), {},
                             stream_table(kind), windowed=False))
    for kind in ("inner", "left", "outer"):
        made.append(Topology(f"table-table-{kind}", f"table-{kind}", ("tleft", "tright"), {},
                             table_table(kind), windowed=False))
    return made


@pytest.mark.slow
@pytest.mark.parametrize("seed", seeds())
async def test_joins_agree_with_kafka_streams(brokers, kafka_streams_oracle, tmp_path, seed):
    rng = random.Random(seed)
    partitions = rng.choice([2, 3])
    topics = {name: Topic(name, partitions) for name in ("left", "right", "stream", "table", "tleft", "tright")}
    two_sides(rng, topics["left"], topics["right"], STREAM_RECORDS)
    close_everything(topics["left"], max(r[2] for r in topics["left"].records) + 120_000)
    two_sides(rng, topics["stream"], topics["table"], TABLE_RECORDS)
    for i, record in enumerate(topics["table"].records):  # tombstones only in the table
        if rng.random() < TOMBSTONES:
            topics["table"].records[i] = (record[0], None, *record[2:])
    two_sides(rng, topics["tleft"], topics["tright"], TABLE_RECORDS, tombstones=TOMBSTONES)
    chosen = topologies(join_params(seed))
    groups = [["left", "right"], ["stream", "table"], ["tleft", "tright"]]
    run = Differential(brokers, kafka_streams_oracle, tmp_path, list(topics.values()), chosen, groups)
    results = await run.run()
    lines, same = difference_report(results, [t.name for t in chosen])
    print(f"seed {seed}, {partitions} partitions, {join_params(seed)}:", *lines, f"seconds: {run.seconds}",
          sep="\n  ")
    assert same, "\n".join(lines)
