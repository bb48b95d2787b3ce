"""The processor API that every operator, store and sink is built on.

A Processor receives a batch (a list of Records) and forwards batches to its
children.  It never awaits: Kafka I/O happens in the runtime around it, so the
same processors serve the worker, the test driver and the embedded broker.
Batches are never mutated after they are forwarded, so one list may be handed to
several children.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from streams.processors.record_cache import CacheBudget
from streams.record import Record
from streams.state.store import KeyValueStore


class ProcessorContext(Protocol):
    """What a task offers its processors."""

    app_id: str
    task_id: str
    partition: int
    metrics: Any
    future_limit: int
    """The latest timestamp a record may carry; later ones are too far in the future (max_future_skew)."""

    @property
    def stream_time(self) -> int: ...

    def wall_clock_ms(self) -> int: ...

    def get_store(self, name: str) -> KeyValueStore: ...

    def emit(self, topic: str, records: list[Record], key_serde: Any, value_serde: Any,
             partitioner: Callable[[bytes | None, int], int] | None = None) -> None: ...

    def report_error(self, record: Record | None, exc: BaseException, operator: str) -> None: ...

    @property
    def cache_budget(self) -> CacheBudget | None: ...


class Processor:
    """Base class: holds children and the context; subclasses implement process()."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.children: list[Processor] = []
        self.context: ProcessorContext | None = None
        self.records_in = 0  # records handed to this node, counted per batch for its rate on the topology page

    def init(self, context: ProcessorContext) -> None:
        self.context = context

    def node_counts(self) -> list[tuple[str, int]]:
        """(node name, records handed to it) for the topology page and the metrics."""
        return [(self.name, self.records_in)]

    def process(self, batch: list[Record]) -> None:
        raise NotImplementedError

    def forward(self, batch: list[Record]) -> None:
        if batch:
            count = len(batch)
            for child in self.children:
                child.records_in += count
                child.process(batch)

    def punctuate(self, wall_clock_ms: int) -> None:
        """Called periodically; windowed operators close windows here."""

    def flush_cache(self) -> None:
        """Called at each commit, before the changelog: processors with a record cache forward it here."""

    def drop_cache(self) -> None:
        """Called when uncommitted work is abandoned: processors with a record cache forget it here."""

    def close(self) -> None:
        """Release resources; called when the task closes."""


class StoreProcessor(Processor):
    """A processor over one named store, which the task opens (and restores) before init() hands it over."""

    def __init__(self, name: str, store_name: str) -> None:
        super().__init__(name)
        self.store_name = store_name
        self.store: Any = None

    def init(self, context: ProcessorContext) -> None:
        super().init(context)
        self.store = context.get_store(self.store_name)
