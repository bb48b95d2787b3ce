"""Restore against the real broker reports its progress, as the CLI's progress bar shows it."""

from __future__ import annotations

import io

from streams.progress import RestoreProgressBar
from streams.runtime.restore import restore_store, restore_stores
from streams.runtime.stores import TaskStore
from streams.serdes import resolve
from streams.state.spec import StoreSpec
from streams.transport.kafka import KafkaTransport
from tests.conftest import create_topics, unique_name
from tests.kafka_helpers import produce


async def test_restore_reports_progress_to_the_bar(brokers, tmp_path):
    changelog = unique_name("changelog")
    await create_topics(brokers, {changelog: 1}, {"cleanup.policy": "compact"})
    await produce(brokers, changelog, [(f"k{i}", i) for i in range(5000)], partition=0)
    spec = StoreSpec("counts", resolve("str", "str"), resolve("json", "json"), changelog)
    store = TaskStore(spec, 0, tmp_path / "counts")
    consumer = KafkaTransport(brokers).consumer(None, isolation_level="read_committed",
                                                config={"max_partition_fetch_bytes": 16 * 1024})
    await consumer.start()
    events = []
    screen = io.StringIO()
    bar = RestoreProgressBar(screen, every_s=0)

    def listen(name, partition, progress):
        events.append(progress)
        bar(name, partition, progress)

    try:
        result = await restore_store(store, consumer, on_progress=listen)
    finally:
        await consumer.stop()
    assert result.restored == 5000 and store.checkpoint() == 5000
    assert len(events) >= 2 and events[-1].remaining == 0 and events[-1].restored == 5000
    assert any(0 < e.restored < 5000 for e in events), "progress arrives while restoring"
    assert [e.remaining for e in events].count(0) == 1, "the finished state is reported once"
    assert "restoring counts[0]" in screen.getvalue() and screen.getvalue().endswith("\n")
    assert screen.getvalue().count("100%") == 1 and screen.getvalue().count("\n") == 1
    assert store.get(b"k4999") == b"4999"
    store.close()


async def test_stores_restore_together_not_one_after_another(brokers, tmp_path):
    changelog = unique_name("changelog")
    await create_topics(brokers, {changelog: 3}, {"cleanup.policy": "compact"})
    for partition in range(3):
        await produce(brokers, changelog, [(f"p{partition}-k{i}", i) for i in range(3000)], partition=partition)
    spec = StoreSpec("counts", resolve("str", "str"), resolve("json", "json"), changelog)
    stores = [TaskStore(spec, partition, tmp_path / f"counts-{partition}") for partition in range(3)]
    consumer = KafkaTransport(brokers).consumer(None, isolation_level="read_committed",
                                                config={"max_partition_fetch_bytes": 16 * 1024})
    await consumer.start()
    remaining: dict[int, int] = {}
    overlapped = []

    def listen(name, partition, progress):
        remaining[partition] = progress.remaining
        overlapped.append(sum(1 for left in remaining.values() if left > 0))

    try:
        results = await restore_stores([*stores, TaskStore(StoreSpec("local", spec.key_serde, spec.value_serde,
                                                                     None), 0, None)],
                                        consumer, on_progress=listen)
    finally:
        await consumer.stop()
    assert [(r.partition.partition, r.restored) for r in results] == [(0, 3000), (1, 3000), (2, 3000)]
    assert max(overlapped) >= 2, "a partition made progress while another one was still restoring"
    for partition, store in enumerate(stores):
        assert store.checkpoint() == 3000 and store.get(f"p{partition}-k2999".encode()) == b"2999"
        store.close()
