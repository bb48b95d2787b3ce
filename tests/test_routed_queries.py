"""Routed interactive queries on the real broker: three workers (two processes plus this one) answer every key
right from any of them, before and after one is killed with SIGKILL, and never answer wrong in between."""

from __future__ import annotations

import asyncio
import time

from streams import App, Tumbling
from streams.errors import StoreUnavailableError
from tests.conftest import create_topics, unique_name
from tests.kafka_helpers import produce, running
from tests.process_helpers import WorkerProcess
from tests.web_helpers import free_port, get

USERS, PER_USER = 24, 5
HOUR_START = (int(time.time()) // 3600 - 1) * 3_600_000 + 1000  # in the last full hour: one window per user


def counting_app(app_id: str, src: str, out: str, state_dir) -> App:
    """The same topology as tests/apps/pipeline.py's "counts-hourly" mode, run in this process."""
    app = App(app_id, state_dir=state_dir, commit_interval=0.3, num_standby_replicas=1, web_port=0,
              consumer_config={"session_timeout_ms": 6000, "heartbeat_interval_ms": 500})
    by_user = app.stream(src).group_by(lambda k, v: v["user"], name="by-user")
    by_user.count(name="counts").to_stream().to(out)
    by_user.window(Tumbling(3_600_000)).count(name="hourly")
    return app


async def answers(endpoint: str, standby: bool = False) -> dict[str, tuple[int, dict]]:
    suffix = "?standby=true" if standby else ""
    results = await asyncio.gather(*(get(f"http://{endpoint}/stores/counts/u{i}{suffix}") for i in range(USERS)))
    return {f"u{i}": (status, body) for i, (status, body, _) in enumerate(results)}


async def settle(endpoints: list[str], timeout: float = 90) -> dict[str, dict[str, tuple[int, dict]]]:
    """Ask every worker for every key until all answer 200; a 200 must always carry the right count."""
    deadline = time.monotonic() + timeout
    while True:
        seen = {endpoint: await answers(endpoint) for endpoint in endpoints}
        for endpoint, by_key in seen.items():
            for key, (status, body) in by_key.items():
                assert status in (200, 503), (endpoint, key, status, body)
                if status == 200:
                    assert body["value"] == PER_USER, (endpoint, key, body)
                else:
                    assert body["retry_after"] > 0 and body["error"], body
        if all(status == 200 for by_key in seen.values() for status, _ in by_key.values()):
            return seen
        assert time.monotonic() < deadline, {e: [k for k, (s, _) in b.items() if s != 200] for e, b in seen.items()}
        await asyncio.sleep(0.5)


async def test_every_key_answers_right_from_every_worker_before_and_after_a_kill(brokers, tmp_path):
    src, out, app_id = unique_name("events"), unique_name("counts-out"), unique_name("routed")
    await create_topics(brokers, {src: 6, out: 6})
    await produce(brokers, src, [(f"e{n}", {"user": f"u{n % USERS}"}, HOUR_START + n)
                                 for n in range(USERS * PER_USER)])
    ports = [free_port(), free_port()]
    env = {"TEST_APP_ID": app_id, "TEST_IN": src, "TEST_OUT": out, "TEST_MODE": "counts-hourly", "TEST_STANDBYS": "1",
           "TEST_COMMIT_INTERVAL": "0.3"}
    others = [WorkerProcess(brokers, {**env, "STREAMS_WEB_PORT": str(port), "TEST_STATE_DIR": str(tmp_path / name)},
                            tmp_path / f"{name}.log").start() for name, port in zip("ab", ports, strict=True)]
    remote = [f"127.0.0.1:{port}" for port in ports]
    app = counting_app(app_id, src, out, tmp_path / "here")
    try:
        async with running(app, ready_timeout=90) as worker:
            endpoints = [worker.endpoint, *remote]
            deadline = time.monotonic() + 90
            while not (worker.assignor.assignment and set(worker.assignor.assignment.hosts) == set(endpoints)
                       and all(w.alive() for w in others)):
                assert time.monotonic() < deadline and all(w.alive() for w in others), [w.log() for w in others]
                await asyncio.sleep(0.3)
            deadline = time.monotonic() + 60
            while True:  # tasks may still be moving to a worker that is warming up its copy of the state
                seen = await settle(endpoints)
                served = {body["served_by"] for by_key in seen.values() for _, body in by_key.values()}
                if served == set(endpoints):
                    break  # every worker holds some keys, and answers for them
                assert time.monotonic() < deadline, f"workers serving no key: {set(endpoints) - served}"
                await asyncio.sleep(1)
            forwarded = sum(body["served_by"] != e for e, by_key in seen.items() for _, body in by_key.values())
            assert forwarded >= USERS, "keys held elsewhere were forwarded to their worker"

            view = app.store("counts")
            results = {f"u{i}": view.query(f"u{i}") for i in range(USERS)}
            assert {k: r.value for k, r in results.items()} == {f"u{i}": PER_USER for i in range(USERS)}
            assert {r.served_by for r in results.values()} == set(endpoints)
            assert all(app.store("counts").get(f"u{i}") == PER_USER for i in range(USERS))
            assert [await view.get_async(f"u{i}") for i in range(USERS)] == [PER_USER] * USERS
            assert view.get("nobody", -1) == -1
            hour = HOUR_START // 3_600_000 * 3_600_000
            for i in range(USERS):  # a windowed store's key, fetched from its worker
                assert [(w.start, n) for w, n in app.store("hourly").fetch(f"u{i}")] == [(hour, PER_USER)]
            status, body, _ = await get(f"http://{remote[0]}/stores/hourly/u0?from={hour}&to={hour}")
            assert status == 200 and [(w["start"], w["value"]) for w in body["windows"]] == [(hour, PER_USER)]

            # Standby reads are opt-in: a worker with a standby copy answers from it and says how far it lags.
            hosts = worker.assignor.assignment.hosts
            by_standby = {}
            for key, (_, body) in seen[worker.endpoint].items():
                holder = next(e for e, h in hosts.items() if body["task"] in h.standby)
                by_standby[key] = holder
            deadline = time.monotonic() + 30
            while True:
                standby_answers = {key: await get(f"http://{holder}/stores/counts/{key}?standby=true")
                                   for key, holder in by_standby.items()}
                if all(s == 200 and b["standby"] and b["lag"] == 0 and b["value"] == PER_USER
                       for s, b, _ in standby_answers.values()):
                    break
                for status, body, _ in standby_answers.values():
                    assert status == 200 and body["standby"] and isinstance(body["lag"], int), body
                assert time.monotonic() < deadline, standby_answers
                await asyncio.sleep(0.5)
            assert all(b["served_by"] == by_standby[k] for k, (_, b, _) in standby_answers.items())

            others[0].kill()  # SIGKILL: no goodbye to the group; its tasks move after the session timeout
            survivors = [worker.endpoint, remote[1]]
            seen = await settle(survivors)
            assert {body["served_by"] for by_key in seen.values() for _, body in by_key.values()} == set(survivors)
            deadline = time.monotonic() + 30
            while True:
                try:
                    assert all(app.store("counts").get(f"u{i}") == PER_USER for i in range(USERS))
                    break
                except StoreUnavailableError as exc:
                    assert time.monotonic() < deadline, exc
                    await asyncio.sleep(exc.retry_after)
            assert others[1].alive(), others[1].log()
    finally:
        for process in others:
            process.kill()
