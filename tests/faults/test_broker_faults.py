"""Cases 1 and 2: the broker itself fails under running workers, under both guarantees at once.

An exactly-once app and an at-least-once app read the same inputs, each with two
worker processes, on a broker of this module alone.  The broker is killed with
kill -9 and restarted (case 1), or frozen with SIGSTOP and thawed with SIGCONT
(case 2), while inputs keep arriving.  The workers must ride out every fault on
their own: none exits, none is restarted by hand.  Exactly-once ends with no
duplicate and no loss; at-least-once with no loss, its duplicates reported.

By default one run has one kill and one stall; `-m slow` runs the full cases:
three kills in one run, and two 20 s stalls in another.  Each fault comes while
inputs flow, and the next one only once every partition has output again.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.faults.harness import (
    EXACTLY_ONCE,
    AppRun,
    Feeder,
    create_inputs,
    reference_from_inputs,
    report,
    wait_all_resumed,
)

GUARANTEES = (EXACTLY_ONCE, "at_least_once")


async def run_with_broker_faults(broker, tmp_path, faults: list, rate: int = 400) -> dict:
    """Start both apps, inject the faults one after another while inputs flow, check the outputs.

    After each fault the test waits until every input partition has output again,
    which it reports as the time to resume.
    """
    inputs = await create_inputs(broker.bootstrap)
    apps = {g: AppRun(broker.bootstrap, inputs, tmp_path / g, g) for g in GUARANTEES}
    feeder = None
    try:
        for app in apps.values():
            await app.start(workers=2)
        feeder = Feeder(broker.bootstrap, inputs, total=10_000_000, rate_per_s=rate).start()  # until the end
        for app in apps.values():
            await app.wait_output()
        resumes: dict[str, list[float]] = {g: [] for g in GUARANTEES}
        fault_times = []
        for fault in faults:
            await asyncio.sleep(3)
            fault_times.append(await fault(broker))
            back = time.time()
            for guarantee, app in apps.items():
                resumes[guarantee].append(await wait_all_resumed(app, back, fault.resume_within_s))
        await asyncio.sleep(3)
        await feeder.finish()
        reference = await reference_from_inputs(broker.bootstrap, inputs)
        results = {}
        for guarantee, app in apps.items():
            verdict = await app.finish(reference)
            assert app.workers.alive() == [0, 1], f"a worker exited: {app.workers.exits}\n{app.workers.logs()}"
            results[guarantee] = {**verdict.figures(), "output_resumed_s": [round(t, 1) for t in resumes[guarantee]],
                                  "verdict": verdict}
        codes = [code for app in apps.values() for code in app.workers.stop_all()]
        assert codes == [0, 0, 0, 0], f"workers did not leave cleanly: {codes}"
        return {"results": results, "fault_s": [round(t, 1) for t in fault_times], "input_resends": feeder.resends}
    finally:
        if feeder is not None and feeder.task is not None:
            feeder.task.cancel()
        for app in apps.values():
            await app.close()


async def kill_and_restart(broker, down_s: float = 3.0) -> float:
    """kill -9 the broker, leave it down a while, start it again; the seconds it was unreachable."""
    began = time.monotonic()
    broker.kill()
    await asyncio.sleep(down_s)
    await asyncio.to_thread(broker.start)
    return time.monotonic() - began


kill_and_restart.resume_within_s = 120  # from the moment the restarted broker answers


def stall(seconds: float):
    """Freeze the broker with SIGSTOP for `seconds`, then SIGCONT; output must resume within 30 s."""
    async def fault(broker) -> float:
        broker.pause()
        await asyncio.sleep(seconds)
        broker.resume()
        return seconds

    fault.resume_within_s = 30
    return fault


def check(outcome: dict, case: str) -> None:
    for guarantee, result in outcome["results"].items():
        verdict = result.pop("verdict")
        report(case, {"guarantee": guarantee, "faults": len(outcome["fault_s"]), "fault_s": outcome["fault_s"],
                      "input_resends": outcome["input_resends"], **result})
        if guarantee == EXACTLY_ONCE:
            assert verdict.exact(), verdict
        else:
            assert verdict.lossless(), verdict


async def test_broker_kill_9_and_restart_then_stall(dedicated_broker, tmp_path):
    """The short version of both cases: one kill -9 and restart, then one 20 s stall, in one run."""
    outcome = await run_with_broker_faults(dedicated_broker, tmp_path, [kill_and_restart, stall(20)])
    check(outcome, "broker-kill-restart-then-stall")


@pytest.mark.slow
async def test_broker_kill_9_and_restart_three_times(dedicated_broker, tmp_path):
    outcome = await run_with_broker_faults(dedicated_broker, tmp_path, [kill_and_restart] * 3)
    check(outcome, "broker-kill-restart")


@pytest.mark.slow
async def test_broker_stall_twice(dedicated_broker, tmp_path):
    outcome = await run_with_broker_faults(dedicated_broker, tmp_path, [stall(20)] * 2)
    check(outcome, "broker-stall")
