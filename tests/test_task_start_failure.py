"""A rebalance that takes a partition while new tasks are being positioned must not leave their stores open.

The worker creates a batch of tasks (opening their RocksDB stores), then looks up each input's
position; a partition revoked in between fails the lookup ("no current assignment"), and the
worker drops its work and rejoins.  The tasks it had just created were not yet its own, so they
were never closed: their stores kept RocksDB's lock, and the restart failed with "already open".
"""

from __future__ import annotations

from aiokafka.errors import IllegalStateError

from streams import App
from streams.transport.embedded.consumer import EmbeddedConsumer


async def test_tasks_created_before_a_failed_position_lookup_are_closed(embedded_brokers, tmp_path, monkeypatch):
    app = App("start-failure", brokers=embedded_brokers, state_dir=tmp_path, commit_interval=0.1)
    words = app.topic("words", partitions=1)
    app.stream(words).group_by_key().count(name="counts").to_stream().to(app.topic("totals", partitions=1))
    position, failures = EmbeddedConsumer.position, []

    async def fails_once(self, partition):
        if not failures:
            failures.append(partition)
            raise IllegalStateError(f"no current assignment for partition {partition}")
        return await position(self, partition)

    monkeypatch.setattr(EmbeddedConsumer, "position", fails_once)
    async with app.running() as run:
        for word in ["a", "b", "a"]:
            await run.send(words, word, 1)
        totals = await run.read("totals", count=3, timeout=20)
    assert failures, "the position lookup failed once"
    assert [(r.key, r.value) for r in totals] == [("a", 1), ("b", 1), ("a", 2)]
