"""Cases 5 and 6: the state itself fails, on the local disk or in Kafka, under exactly-once.

5. The state disk fills up.  The worker stops with an error naming the store's
   folder; it commits no offsets past state it could not write, so after the space
   is freed and the worker restarts, every output and the final table are exact.
6. The changelog topic is deleted under a running app.  The workers stop with an
   error naming it, a restarted worker refuses to recreate it empty (which would
   silently restart the state from nothing), and `streams rebuild` rebuilds the
   state from the input topics by replay, after which the final table is exact.
"""

from __future__ import annotations

import asyncio
import time

from aiokafka.admin import AIOKafkaAdminClient

from tests.faults.disk import StateDisk
from tests.faults.harness import EXACTLY_ONCE, AppRun, Feeder, create_inputs, reference_from_inputs, report


async def test_state_disk_full_stops_the_worker_and_loses_nothing(brokers, tmp_path):
    records = 8_000
    inputs = await create_inputs(brokers)
    with StateDisk(tmp_path / "disk") as disk:
        app = AppRun(brokers, inputs, tmp_path / "app", EXACTLY_ONCE, env=disk.env(), state_root=disk.folder)
        feeder = Feeder(brokers, inputs, records, rate_per_s=500)
        try:
            await app.start(workers=1)
            feeder.start()
            await app.wait_output()
            await asyncio.sleep(2)
            processed_before = sum(app.collector.outputs.echo.values())
            disk.fill()
            filled = time.monotonic()
            code = await app.workers.wait_exit(0, timeout=90)
            stopped_s = time.monotonic() - filled
            log = app.workers.processes[0].log()
            assert code == 2, f"the worker did not stop on the full disk (exit {code})\n{log}"
            error = _error_line(log)
            assert "No space left on device" in error and str(disk.folder) in error, error
            assert "hint: free space" in log, log
            disk.free()
            app.workers.start(0)
            await feeder.wait()
            reference = await reference_from_inputs(brokers, inputs)
            verdict = await app.finish(reference)
            assert verdict.exact(), verdict
            report("state-disk-full", {"guarantee": EXACTLY_ONCE, "disk": disk.kind, "faults": 1,
                                       "processed_before_fill": processed_before,
                                       "stopped_after_s": round(stopped_s, 1), "error": error[:200],
                                       **verdict.figures()})
        finally:
            if feeder.task is not None:
                feeder.task.cancel()
            await app.close()


async def test_deleted_changelog_stops_the_app_and_rebuild_replays_the_inputs(brokers, tmp_path):
    records = 5_000
    inputs = await create_inputs(brokers)
    # A shorter request timeout bounds how long the commit that writes to the deleted topic waits.
    app = AppRun(brokers, inputs, tmp_path, EXACTLY_ONCE, env={"FAULTS_REQUEST_TIMEOUT_MS": "5000"})
    feeder = Feeder(brokers, inputs, records, rate_per_s=500)
    changelog = app.topics.changelog
    try:
        await app.start(workers=2)
        feeder.start()
        await app.wait_output()
        await asyncio.sleep(2)
        admin = AIOKafkaAdminClient(bootstrap_servers=brokers)
        await admin.start()
        try:
            await admin.delete_topics([changelog])
        finally:
            await admin.close()
        deleted = time.monotonic()
        codes = [await app.workers.wait_exit(slot, timeout=180) for slot in (0, 1)]
        stopped_s = time.monotonic() - deleted
        assert codes == [2, 2], f"exit codes {codes}\n{app.workers.logs()}"
        for slot in (0, 1):
            log = app.workers.processes[slot].log()
            error = _error_line(log)
            assert changelog in error and "deleted while the application ran" in error, error
            assert "hint: stop every worker and run `streams rebuild" in log, log

        # Restarted without a rebuild, a worker refuses to recreate the changelog empty.
        await feeder.wait()
        app.workers.start(0)
        assert await app.workers.wait_exit(0, timeout=120) == 2, app.workers.logs()
        refusal = _error_line(app.workers.processes[0].log())
        assert changelog in refusal and "committed input offsets" in refusal, refusal

        rebuilt = [app.workers.command(slot, "rebuild") for slot in (0, 1)]
        assert [r.returncode for r in rebuilt] == [0, 0], [r.stdout + r.stderr for r in rebuilt]
        assert f"changelog topics missing: {changelog}" in rebuilt[0].stdout, rebuilt[0].stdout
        assert "reset" in rebuilt[0].stdout and "delete local state" in rebuilt[1].stdout, rebuilt[1].stdout
        for slot in (0, 1):
            app.workers.start(slot)
        reference = await reference_from_inputs(brokers, inputs)
        verdict = await app.finish(reference)
        assert not (verdict.losses or verdict.totals_wrong or verdict.table_wrong or verdict.counted_twice
                    or verdict.counted_never), verdict
        report("changelog-deleted", {"guarantee": EXACTLY_ONCE, "faults": 1, "records": verdict.records,
                                     "stopped_after_s": round(stopped_s, 1), "table_wrong": verdict.table_wrong,
                                     "totals_wrong": verdict.totals_wrong, "losses": verdict.losses,
                                     "replayed_outputs": verdict.duplicates, "error": refusal[:160]})
    finally:
        if feeder.task is not None:
            feeder.task.cancel()
        await app.close()


def _error_line(log: str) -> str:
    lines = [line for line in log.splitlines() if line.startswith("error: ")]
    assert lines, f"no error line in the worker's log:\n{log}"
    return lines[-1]
