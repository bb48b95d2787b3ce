"""Cases 3 and 4: workers come and go under exactly-once, and the output stays exact.

3. Rebalance storm: workers join, leave cleanly (SIGTERM) and crash (kill -9),
   mixed, while inputs flow through a repartition, an aggregate and a windowed
   aggregate.
4. Long chaos: workers are killed with kill -9 over and over, with standby
   replicas on (and, for comparison, off).  The victim stays down until the
   others have taken its tasks over, then comes back; the next kill waits until it
   runs tasks again.  For each kill the test measures the time from the kill until
   every input partition the victim owned has committed output again, and from the
   workers' logs the records restored per store restore and per takeover (a task
   started by a worker that did not run it just before).

The default runs are short; `-m slow` runs the full cases: 20 membership changes
over 200,000 records, and 50 kills with standbys (20 without, for the comparison).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter

import pytest

from tests.faults.harness import (
    EXACTLY_ONCE,
    AppRun,
    Feeder,
    create_inputs,
    owned_at,
    reference_from_inputs,
    report,
    restores,
    resumed_after,
    summary,
    takeovers,
    wait_all_resumed,
    wait_tasks_started,
)

PATTERN = ("join", "kill -9", "join", "sigterm")  # half joins; leaves alternate between crashes and clean exits


async def run_storm(brokers, tmp_path, records: int, changes: int, rate: int) -> None:
    inputs = await create_inputs(brokers)
    app = AppRun(brokers, inputs, tmp_path, EXACTLY_ONCE, windows=True)
    feeder = Feeder(brokers, inputs, records, rate)
    rng = random.Random(3)
    kinds: Counter[str] = Counter()
    try:
        await app.start(workers=2)
        feeder.start()
        await app.wait_output()
        next_slot = 2
        interval = records / rate / (changes + 1)
        for n in range(changes):
            await asyncio.sleep(interval * rng.uniform(0.5, 1.5))
            alive = app.workers.alive()
            kind = PATTERN[n % len(PATTERN)]
            if kind == "join" and len(alive) >= 4:
                kind = "sigterm"
            elif kind != "join" and len(alive) <= 1:
                kind = "join"
            kinds[kind] += 1
            if kind == "join":
                app.workers.start(next_slot)
                next_slot += 1
            elif kind == "sigterm":
                code = await asyncio.to_thread(app.workers.terminate, rng.choice(alive))
                assert code == 0, f"a worker did not leave cleanly on SIGTERM (exit {code})\n{app.workers.logs()}"
            else:
                app.workers.kill(rng.choice(alive))
        await feeder.wait()
        reference = await reference_from_inputs(brokers, inputs)
        verdict = await app.finish(reference, timeout=300)
        report("rebalance-storm", {"guarantee": EXACTLY_ONCE, "changes": dict(kinds), "faults": changes,
                                   "windows": len(reference.windows), **verdict.figures()})
        assert verdict.exact(), verdict
        assert set(app.workers.stop_all()) == {0}
    finally:
        if feeder.task is not None:
            feeder.task.cancel()
        await app.close()


async def test_rebalance_storm(brokers, tmp_path):
    await run_storm(brokers, tmp_path, records=16_000, changes=4, rate=1_000)


@pytest.mark.slow
async def test_rebalance_storm_twenty_changes(brokers, tmp_path):
    await run_storm(brokers, tmp_path, records=200_000, changes=20, rate=2_000)


async def run_long_chaos(brokers, tmp_path, kills: int, standbys: int, rate: int) -> dict:
    """kill -9 a random worker, let the others take over, restart it; then the next kill."""
    inputs = await create_inputs(brokers)
    app = AppRun(brokers, inputs, tmp_path / f"standbys-{standbys}", EXACTLY_ONCE, standbys=standbys)
    feeder = Feeder(brokers, inputs, total=10_000_000, rate_per_s=rate)  # stopped after the last kill
    rng = random.Random(4 + standbys)
    victims = []  # (kill time, pid)
    try:
        await app.start(workers=3)
        feeder.start()
        await app.wait_output()
        await asyncio.sleep(3)
        first_kill = time.time()
        for _ in range(kills):
            slot = rng.choice(app.workers.alive())
            victims.append((time.time(), app.workers.processes[slot].pid))
            app.workers.kill(slot)
            await wait_all_resumed(app, victims[-1][0], timeout=180)  # the others took the victim's tasks
            restarted = time.time()
            app.workers.start(slot)
            await wait_tasks_started(app, slot, restarted, timeout=180)  # it rejoined and runs tasks
            await wait_all_resumed(app, time.time(), timeout=180)
            await asyncio.sleep(rng.uniform(1, 3))
        await feeder.finish()
        reference = await reference_from_inputs(brokers, inputs)
        verdict = await app.finish(reference, timeout=300)
        recoveries = []
        for moment, pid in victims:
            owned = owned_at(app.collector, moment, pid)
            resumed = resumed_after(app.collector, moment, exclude_pid=pid)
            if owned:
                recoveries.append(max(resumed[p] for p in owned))
        restored = restores(app.workers.log_paths(), after_s=first_kill)
        moved = takeovers(app.workers.log_paths(), after_s=first_kill)
        figures = {"guarantee": EXACTLY_ONCE, "standbys": standbys, "faults": kills, **verdict.figures(),
                   "recovery_s": summary(recoveries), "restored_per_restore": summary(restored),
                   "restored_per_takeover": summary(moved), "restored_total": sum(restored)}
        report("long-chaos", figures)
        assert verdict.exact(), verdict
        return figures
    finally:
        if feeder.task is not None:
            feeder.task.cancel()
        await app.close()


async def test_long_chaos_with_standbys(brokers, tmp_path):
    figures = await run_long_chaos(brokers, tmp_path, kills=2, standbys=1, rate=300)
    assert figures["recovery_s"]["n"] > 0, "no kill hit a worker that owned input partitions"


@pytest.mark.slow
@pytest.mark.parametrize(("standbys", "kills"), [(1, 50), (0, 20)])  # without standbys: the comparison
async def test_long_chaos_fifty_kills(brokers, tmp_path, standbys, kills):
    figures = await run_long_chaos(brokers, tmp_path, kills=kills, standbys=standbys, rate=300)
    assert figures["recovery_s"]["n"] > 0
