"""Stateless operators over batches.

Each loop calls the user's function once per record and isolates failures per
record: a record whose callback raises goes to the task's error policy (dead
letter, skip or fail) and the rest of the batch carries on.  A callback that
returns the wrong shape is a programming error and raises TopologyError naming
the operator.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from streams.errors import TopologyError
from streams.processors.api import Processor
from streams.record import Record


def key_value_pair(result: Any, operator: str) -> tuple[Any, Any]:
    if type(result) is tuple and len(result) == 2:
        return result
    if isinstance(result, (tuple, list)) and len(result) == 2:
        return result[0], result[1]
    raise TopologyError(f"operator {operator!r} must return a (key, value) pair, got {result!r}")


class Filter(Processor):
    def __init__(self, name: str, predicate: Callable[[Any, Any], bool], keep: bool = True) -> None:
        super().__init__(name)
        self.predicate = predicate
        self.keep = keep

    def process(self, batch: list[Record]) -> None:
        predicate, keep = self.predicate, self.keep
        out: list[Record] = []
        append = out.append
        for r in batch:
            try:
                if bool(predicate(r.key, r.value)) is keep:
                    append(r)
            except Exception as exc:
                self.context.report_error(r, exc, self.name)
        self.forward(out)


class Map(Processor):
    def __init__(self, name: str, fn: Callable[[Any, Any], tuple[Any, Any]]) -> None:
        super().__init__(name)
        self.fn = fn

    def process(self, batch: list[Record]) -> None:
        fn, name, out = self.fn, self.name, []
        for r in batch:
            try:
                result = fn(r.key, r.value)
            except Exception as exc:
                self.context.report_error(r, exc, name)
                continue
            key, value = key_value_pair(result, name)
            out.append(Record(key, value, r.timestamp, r.headers, r.origin))
        self.forward(out)


class MapValues(Processor):
    def __init__(self, name: str, fn: Callable[[Any], Any], with_key: bool = False) -> None:
        super().__init__(name)
        self.fn = fn
        self.with_key = with_key

    def process(self, batch: list[Record]) -> None:
        fn, with_key = self.fn, self.with_key
        out: list[Record] = []
        append = out.append
        for r in batch:
            try:
                value = fn(r.key, r.value) if with_key else fn(r.value)
            except Exception as exc:
                self.context.report_error(r, exc, self.name)
                continue
            append(Record(r.key, value, r.timestamp, r.headers, r.origin))
        self.forward(out)


class SelectKey(Processor):
    def __init__(self, name: str, fn: Callable[[Any, Any], Any]) -> None:
        super().__init__(name)
        self.fn = fn

    def process(self, batch: list[Record]) -> None:
        fn, out = self.fn, []
        for r in batch:
            try:
                key = fn(r.key, r.value)
            except Exception as exc:
                self.context.report_error(r, exc, self.name)
                continue
            out.append(Record(key, r.value, r.timestamp, r.headers, r.origin))
        self.forward(out)


class FlatMap(Processor):
    def __init__(self, name: str, fn: Callable[[Any, Any], Iterable[tuple[Any, Any]]]) -> None:
        super().__init__(name)
        self.fn = fn

    def process(self, batch: list[Record]) -> None:
        fn, name, out = self.fn, self.name, []
        for r in batch:
            try:
                results = list(fn(r.key, r.value))
            except Exception as exc:
                self.context.report_error(r, exc, name)
                continue
            for result in results:
                key, value = key_value_pair(result, name)
                out.append(Record(key, value, r.timestamp, r.headers, r.origin))
        self.forward(out)


class FlatMapValues(Processor):
    def __init__(self, name: str, fn: Callable[[Any], Iterable[Any]]) -> None:
        super().__init__(name)
        self.fn = fn

    def process(self, batch: list[Record]) -> None:
        fn, out = self.fn, []
        for r in batch:
            try:
                values = list(fn(r.value))
            except Exception as exc:
                self.context.report_error(r, exc, self.name)
                continue
            out.extend(Record(r.key, v, r.timestamp, r.headers, r.origin) for v in values)
        self.forward(out)


class Peek(Processor):
    """Calls fn for its side effect and forwards the batch unchanged (foreach forwards to nobody)."""

    def __init__(self, name: str, fn: Callable[[Any, Any], Any]) -> None:
        super().__init__(name)
        self.fn = fn

    def process(self, batch: list[Record]) -> None:
        fn = self.fn
        failed = None
        for r in batch:
            try:
                fn(r.key, r.value)
            except Exception as exc:
                self.context.report_error(r, exc, self.name)
                failed = failed or set()
                failed.add(id(r))
        self.forward(batch if failed is None else [r for r in batch if id(r) not in failed])


class Split(Processor):
    """Routes each record to the first branch whose predicate holds, else to the default branch."""

    def __init__(self, name: str, predicates: Mapping[str, Callable[[Any, Any], bool]], default: str | None) -> None:
        super().__init__(name)
        self.predicates = list(predicates.items())
        self.default = default
        self.branches: dict[str, Processor] = {}

    def process(self, batch: list[Record]) -> None:
        routed: dict[str, list[Record]] = {}
        for r in batch:
            try:
                target = next((branch for branch, p in self.predicates if p(r.key, r.value)), self.default)
            except Exception as exc:
                self.context.report_error(r, exc, self.name)
                continue
            if target is not None:
                routed.setdefault(target, []).append(r)
        for branch, records in routed.items():
            child = self.branches.get(branch)
            if child is not None:
                child.records_in += len(records)
                child.process(records)


class Passthrough(Processor):
    """Forwards batches as they come: the join point of merge() and of branches."""

    def process(self, batch: list[Record]) -> None:
        self.forward(batch)
