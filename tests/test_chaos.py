"""Exactly-once under chaos: workers killed with kill -9 and restarted while data flows.

Each input has a unique id; the app keeps per user the count and the sum of ids,
through a repartition topic and a changelogged store.  A duplicate or a lost
input changes the sum, and a repeated or missing output update breaks the run
of counts 1, 2, 3, ... that each user's updates must form.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal

from aiokafka import AIOKafkaProducer

from tests.conftest import create_topics, unique_name
from tests.kafka_helpers import decoded, read_topic
from tests.process_helpers import WorkerProcess

RECORDS = int(os.environ.get("CHAOS_RECORDS", "200000"))
USERS = 500
PARTITIONS = 8
WORKERS = 3


async def produce_all(brokers: str, topic: str, total: int, rate_per_s: int) -> None:
    """Send the inputs at a steady rate, so that kills land mid-stream."""
    import orjson

    producer = AIOKafkaProducer(bootstrap_servers=brokers, linger_ms=20, max_batch_size=256 * 1024)
    await producer.start()
    try:
        chunk = max(1, rate_per_s // 10)
        for start in range(0, total, chunk):
            futures = [await producer.send(topic, orjson.dumps({"user": f"u{i % USERS}", "id": i}),
                                           key=f"e{i}".encode()) for i in range(start, min(total, start + chunk))]
            await asyncio.gather(*futures)
            await asyncio.sleep(0.1)
    finally:
        await producer.stop()


async def test_chaos_kill_9_exactly_once(brokers, tmp_path):
    src, out, app_id = unique_name("in"), unique_name("out"), unique_name("chaos")
    await create_topics(brokers, {src: PARTITIONS, out: PARTITIONS})
    env = {"TEST_APP_ID": app_id, "TEST_IN": src, "TEST_OUT": out, "TEST_MODE": "sumcount",
           "TEST_GUARANTEE": "exactly_once_v2"}
    workers = [WorkerProcess(brokers, {**env, "TEST_STATE_DIR": str(tmp_path / f"w{n}")}, tmp_path / f"w{n}.log")
               for n in range(WORKERS)]
    for worker in workers:
        worker.start()
    rng = random.Random(42)
    kills = 0
    try:
        producing = asyncio.create_task(produce_all(brokers, src, RECORDS, rate_per_s=8000))
        while not producing.done() or kills < 3:
            await asyncio.sleep(rng.uniform(2.0, 4.0))
            victim = rng.choice(workers)
            victim.signal(signal.SIGKILL)
            victim.wait(10)
            kills += 1
            victim.start()
        await producing
        expected_final = {f"u{u}": {"count": len(range(u, RECORDS, USERS)), "sum": sum(range(u, RECORDS, USERS))}
                          for u in range(USERS)}
        latest: dict[str, dict] = {}
        records: list = []
        deadline = asyncio.get_running_loop().time() + 240
        while latest != expected_final and asyncio.get_running_loop().time() < deadline:
            records = await read_topic(brokers, out, expected=None, timeout=60, idle=3)
            latest = {}
            for key, value in decoded(records):
                latest[key] = value
        assert kills >= 3
        assert latest == expected_final, [w.log()[-1500:] for w in workers]
        counts: dict[str, list[int]] = {}
        for key, value in decoded(records):
            counts.setdefault(key, []).append(value["count"])
        for key, seen in counts.items():
            # the record cache sends the last update per key of each commit: counts only grow, none repeats
            assert seen == sorted(set(seen)), f"{key}: an output update repeated"
        changelog = await read_topic(brokers, f"{app_id}-totals-changelog", expected=None, timeout=60, idle=3)
        assert {k: v for k, v in decoded(changelog)} == expected_final
    finally:
        for worker in workers:
            worker.kill()
