"""Standby replicas: warm copies of other workers' task stores.

A standby task has stores but no processors.  One consumer, outside the group,
follows the changelog partitions of all standby stores and applies them in
batches with their checkpoints, so that when the task moves here its restore
only replays the short tail the standby had not read yet.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from streams.runtime.restore import write_records
from streams.runtime.stores import TaskStore
from streams.state.restore import StoreRestorer
from streams.transport.base import Consumer, TopicPartition

log = logging.getLogger(__name__)


class StandbyTasks:
    def __init__(self, consumer: Consumer, open_stores: Callable[[str], dict[str, TaskStore]]) -> None:
        self._consumer = consumer
        self._open_stores = open_stores
        self.stores: dict[str, dict[str, TaskStore]] = {}
        self._by_partition: dict[TopicPartition, tuple[TaskStore, StoreRestorer]] = {}
        self.applied = 0

    @property
    def task_ids(self) -> set[str]:
        return set(self.stores)

    def partitions(self) -> list[TopicPartition]:
        """The changelog partitions followed."""
        return list(self._by_partition)

    def position(self, changelog: TopicPartition) -> int | None:
        """The next changelog offset the standby store will apply."""
        following = self._by_partition.get(changelog)
        return None if following is None else following[1].position

    async def update(self, wanted: Iterable[str]) -> None:
        """Keep standbys for exactly the wanted task ids, and follow their changelogs."""
        wanted = set(wanted)
        for task_id in sorted(set(self.stores) - wanted):
            self.release(task_id)
        for task_id in sorted(wanted - set(self.stores)):
            self.stores[task_id] = self._open_stores(task_id)
        await self._follow()

    def release(self, task_id: str) -> None:
        """Close a standby's stores, for example because the task becomes active here."""
        for store in self.stores.pop(task_id, {}).values():
            self._by_partition.pop(store.changelog, None)
            store.close()

    async def _follow(self) -> None:
        self._by_partition = {}
        for stores in self.stores.values():
            for store in stores.values():
                if store.changelog is not None:
                    self._by_partition[store.changelog] = (store, StoreRestorer(store.local))
        partitions = list(self._by_partition)
        self._consumer.assign(partitions)
        if not partitions:
            return
        beginnings = await self._consumer.beginning_offsets(partitions)
        ends = await self._consumer.end_offsets(partitions)
        for tp, (_store, restorer) in self._by_partition.items():
            self._consumer.seek(tp, restorer.start_offset(beginnings[tp], ends[tp]))
        log.info("following %d changelog partitions for standby tasks %s", len(partitions),
                 ", ".join(sorted(self.stores)))

    async def poll(self, timeout_ms: int = 0) -> int:
        """Apply whatever changelog records have arrived; returns how many."""
        if not self._by_partition:
            return 0
        batches = await self._consumer.poll(timeout_ms, 50_000)
        applied = 0
        for tp, records in batches.items():
            following = self._by_partition.get(tp)
            if following is not None and records:
                store, restorer = following
                before = restorer.restored
                write_records(restorer, store, records)
                applied += restorer.restored - before
        self.applied += applied
        return applied

    def close(self) -> None:
        for task_id in list(self.stores):
            self.release(task_id)
