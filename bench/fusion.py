"""A fused chain of stateless operators: generated code, composed closures and unfused processors.

    python -m bench.fusion [--records 300000] [--rounds 3]

Runs one chain (filter, map_values, map, map_values) over the same batches of
256 Records three ways, in turn, each round: the generated loop that tasks use
(streams/processors/fused.py), the same steps as composed closures (one call per
step per record on top of the user's callback), and the unfused processors,
each making its own Records and batch.  Reports CPU seconds and ratios.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from streams.processors.api import Processor
from streams.processors.fused import FusedChain
from streams.processors.stateless import Filter, Map, MapValues
from streams.record import Record

SKIP = object()


class _Context:
    def report_error(self, record: Any, exc: BaseException, operator: str) -> None:
        pass


class _Sink(Processor):
    def process(self, batch: list[Record]) -> None:
        pass


def steps() -> list[Processor]:
    chain = [Filter("filter", lambda k, v: v % 10 != 0), MapValues("plus", lambda v: v + 1),
             Map("double", lambda k, v: (k, v * 2)), MapValues("minus", lambda v: v - 1)]
    for step in chain:
        step.context = _Context()  # type: ignore[assignment]
    return chain


def generated() -> Callable[[list[Record]], None]:
    fused = FusedChain(steps())
    fused.context = _Context()  # type: ignore[assignment]
    fused.children = [_Sink("sink")]
    return fused.process


def closures() -> Callable[[list[Record]], None]:
    fns: list[Callable[[Any, Any], Any]] = []
    for step in steps():
        if isinstance(step, Filter):
            fns.append(lambda k, v, p=step.predicate, keep=step.keep: (k, v) if bool(p(k, v)) is keep else SKIP)
        elif isinstance(step, MapValues):
            fns.append(lambda k, v, f=step.fn: (k, f(v)))
        else:
            fns.append(step.fn)
    sink = _Sink("sink")

    def process(batch: list[Record]) -> None:
        out, errors = [], []
        for r in batch:
            k, v = r.key, r.value
            for i, fn in enumerate(fns):
                try:
                    kv = fn(k, v)
                except Exception as exc:
                    errors.append((i, r, exc))
                    break
                if kv is SKIP:
                    break
                k, v = kv
            else:
                out.append(Record(k, v, r.timestamp, r.headers, r.origin))
        sink.process(out)
    return process


def unfused() -> Callable[[list[Record]], None]:
    chain = steps()
    for step, child in zip(chain, [*chain[1:], _Sink("sink")], strict=True):
        step.children = [child]
    return chain[0].process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    batches = [[Record(f"k{i}", i, i, (), None) for i in range(start, min(start + 256, args.records))]
               for start in range(0, args.records, 256)]
    sides = {"generated": generated(), "closures": closures(), "unfused": unfused()}
    best = {side: float("inf") for side in sides}
    for _ in range(args.rounds):
        for side, process in sides.items():
            started = time.process_time()
            for batch in batches:
                process(batch)
            best[side] = min(best[side], time.process_time() - started)
            print(f"  {side:10} {best[side]:.3f} CPU s (best so far)")
    print(f"best of {args.rounds}: closures/generated {best['closures'] / best['generated']:.2f}, "
          f"unfused/generated {best['unfused'] / best['generated']:.2f}")


if __name__ == "__main__":
    main()
