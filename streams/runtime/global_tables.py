"""The worker's global tables: restored in full at start-up, then followed in the worker loop.

One consumer outside the group is assigned every partition of every global
table's topic.  start() reads each partition from the offset its store reached
to the end offset it had when the worker started, before the worker joins the
group, so no task ever sees a global table that is still loading.  After that,
poll() applies whatever has arrived, once per loop turn, just before the loop
processes its next batch.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from streams.config import StreamsConfig
from streams.errors import TopologyError
from streams.state.global_store import GlobalStore
from streams.state.restore import needs_wipe
from streams.state.rocksdb import RocksDBConfig, RocksDBStore
from streams.state.spec import StoreSpec
from streams.transport.base import Admin, TopicPartition, Transport

log = logging.getLogger(__name__)

POLL_RECORDS = 50_000


def open_global_store(spec: StoreSpec, config: StreamsConfig, store_config: RocksDBConfig | None) -> GlobalStore:
    """The global table's store at <state_dir>/<app_id>/global/<name>."""
    local, _rebuilt = RocksDBStore.open_or_rebuild(spec.name, config.state_path("global", spec.name), store_config)
    return GlobalStore(spec, local)


class GlobalTables:
    def __init__(self, specs: list[StoreSpec], transport: Transport, config: StreamsConfig,
                 store_config: RocksDBConfig | None = None) -> None:
        self.specs = specs
        self.transport = transport
        self.config = config
        self.store_config = store_config
        self.stores: dict[str, GlobalStore] = {}
        self.applied: dict[str, int] = {}
        self._by_topic: dict[str, list[GlobalStore]] = defaultdict(list)
        self._consumer: Any = None

    async def start(self, admin: Admin) -> None:
        """Open every global store and bring it to the end of its topic."""
        if not self.specs:
            return
        topics = sorted({s.options["topic"] for s in self.specs})
        info = await admin.describe_topics(topics)
        missing = [t for t in topics if info.get(t) is None]
        if missing:
            raise TopologyError(f"global table topics do not exist: {', '.join(missing)}")
        for spec in self.specs:
            store = open_global_store(spec, self.config, self.store_config)
            self.stores[spec.name] = store
            self._by_topic[store.topic].append(store)
        self._consumer = self.transport.consumer(None, isolation_level="read_committed",
                                                 config=self.config.consumer_config)
        await self._consumer.start()
        partitions = [TopicPartition(t, p) for t in topics for p in range(info[t].partitions)]
        self._consumer.assign(partitions)
        beginnings = await self._consumer.beginning_offsets(partitions)
        ends = await self._consumer.end_offsets(partitions)
        for topic in topics:
            for tp, offset in self._start_offsets(topic, [tp for tp in partitions if tp.topic == topic], beginnings,
                                                  ends).items():
                self._consumer.seek(tp, offset)
        started = time.monotonic()
        pending = {tp for tp in partitions if await self._consumer.position(tp) < ends[tp]}
        while pending:
            await self._apply(await self._consumer.poll(200, POLL_RECORDS))
            pending = {tp for tp in pending if await self._consumer.position(tp) < ends[tp]}
        log.info("restored global tables %s in %.2fs: %s", ", ".join(sorted(self.stores)), time.monotonic() - started,
                 ", ".join(f"{name} {n} records" for name, n in sorted(self.applied.items())))

    def _start_offsets(self, topic: str, partitions: list[TopicPartition], beginnings: Mapping[TopicPartition, int],
                       ends: Mapping[TopicPartition, int]) -> dict[TopicPartition, int]:
        """Where each partition resumes; the topic's stores restart from scratch if they cannot resume."""
        stores = self._by_topic[topic]
        offsets = [store.offsets() for store in stores]
        first = offsets[0]
        usable = bool(first) and all(o == first for o in offsets) and not any(
            needs_wipe(first[tp.partition], beginnings[tp], ends[tp]) for tp in partitions if tp.partition in first)
        if not usable:
            if any(offsets):
                log.warning("global tables %s cannot resume from offsets %s; rebuilding",
                            ", ".join(s.name for s in stores), first)
            for store in stores:
                store.wipe()
            return {tp: beginnings[tp] for tp in partitions}
        return {tp: first.get(tp.partition, beginnings[tp]) for tp in partitions}

    async def poll(self) -> int:
        """Apply the records that have arrived since the last call, without waiting."""
        if self._consumer is None:
            return 0
        return await self._apply(await self._consumer.poll(0, POLL_RECORDS))

    async def _apply(self, batches: Mapping[TopicPartition, list]) -> int:
        applied = 0
        for tp, records in batches.items():
            if not records:
                continue
            for store in self._by_topic.get(tp.topic, ()):
                count = store.apply(tp.partition, records)
                self.applied[store.name] = self.applied.get(store.name, 0) + count
                applied += count
        return applied

    async def stop(self) -> None:
        if self._consumer is not None:
            try:
                await self._consumer.stop()
            finally:
                self._consumer = None
        for store in self.stores.values():
            store.close()
