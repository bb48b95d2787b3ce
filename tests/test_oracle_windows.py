"""Windowed counts with final results agree with Kafka Streams on generated input (tests/oracle_support.py).

Each seed draws window sizes and grace periods (seed 1 uses a size of 10 s, a session gap of 5 s
and a grace of 5 s), about 2,000 records over 20 keys with out-of-order and late records, and a
record far in the future on every partition at the end to close every window.  Kafka Streams runs
count().suppress(untilWindowCloses(unbounded())); streams runs count(emit="final"), on the worker
and on the TestDriver.  Results are compared as multisets of (key, start, end, count, timestamp).
"""

from __future__ import annotations

import random

import pytest

from streams.windows import Hopping, Session, Sliding, Tumbling
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
    seeds,
)

RECORDS = 2_000


def window_params(seed: int) -> dict[str, int]:
    if seed == 1:
        return {"size": 10_000, "advance": 5_000, "difference": 10_000, "gap": 5_000, "grace": 5_000}
    rng = random.Random(seed * 7919)
    size = rng.choice([5_000, 10_000])
    return {"size": size, "advance": rng.choice([size // 2, size // 5]), "difference": rng.choice([2_000, 10_000]),
            "gap": rng.choice([1_000, 5_000]), "grace": rng.choice([0, 1_000, 5_000])}


def topologies(p: dict[str, int]) -> list[Topology]:
    grace = p["grace"]

    def counting(window):
        def build(sources: Sources, output: str) -> None:
            sources.stream("win").group_by_key().window(window).count(emit="final").to(output)
        return build

    return [
        Topology("tumbling", "tumbling", ("win",), {"size": p["size"], "grace": grace},
                 counting(Tumbling(p["size"], grace=grace)), windowed=True),
        Topology("hopping", "hopping", ("win",), {"size": p["size"], "advance": p["advance"], "grace": grace},
                 counting(Hopping(p["size"], p["advance"], grace=grace)), windowed=True),
        Topology("sliding", "sliding", ("win",), {"difference": p["difference"], "grace": grace},
                 counting(Sliding(p["difference"], grace=grace)), windowed=True),
        Topology("session", "session", ("win",), {"gap": p["gap"], "grace": grace},
                 counting(Session(p["gap"], grace=grace)), windowed=True),
    ]


@pytest.mark.slow
@pytest.mark.parametrize("seed", seeds())
async def test_windowed_counts_agree_with_kafka_streams(brokers, kafka_streams_oracle, tmp_path, seed):
    rng = random.Random(seed)
    win = Topic("win", partitions=rng.choice([2, 3]))
    times = event_times(rng, RECORDS)
    for i, t in enumerate(times):
        win.add(rng.choice(KEYS), f"v{i}", BASE + t)
    close_everything(win, BASE + max(times) + 120_000)
    chosen = topologies(window_params(seed))
    run = Differential(brokers, kafka_streams_oracle, tmp_path, [win], chosen, [["win"]])
    results = await run.run()
    lines, same = difference_report(results, [t.name for t in chosen])
    print(f"seed {seed}, {win.partitions} partitions, {window_params(seed)}:", *lines, f"seconds: {run.seconds}",
          sep="\n  ")
    assert same, "\n".join(lines)
