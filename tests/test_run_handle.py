"""The run handle: app.running() for scripts and tests, and app.run(timeout=, count=) for bounded runs."""

from __future__ import annotations

import asyncio

import pytest

from streams import App, ProcessingError
from tests.brokers_helpers import make_app
from tests.conftest import unique_name


def doubling_app(url: str, tmp_path, **settings) -> tuple[App, object, object]:
    app = make_app(url, tmp_path, **settings)
    numbers, doubled = app.topic(unique_name("numbers"), partitions=2), app.topic(unique_name("doubled"))
    app.stream(numbers).map_values(lambda n: n * 2).to(doubled)
    return app, numbers, doubled


async def test_send_read_until_and_stop(broker_url, tmp_path):
    app, numbers, doubled = doubling_app(broker_url, tmp_path)
    async with app.running() as run:
        for n in range(5):
            await run.send(numbers, f"k{n}", n)
        first = await run.read(doubled, count=2, timeout=30)
        rest = await run.read(doubled, count=3, timeout=30)
        await run.until(lambda: run.worker.metrics.get("records_processed") == 5)
        with pytest.raises(TimeoutError, match="read 0 records"):
            await run.read(doubled, count=1, timeout=0.5)
        await run.stop()
        await run.stop()  # stopping twice is harmless
    assert sorted(r.value for r in first + rest) == [0, 2, 4, 6, 8]
    async with app.running() as run:  # a second run reads only what it writes, unless asked for everything
        await run.send(numbers, "k9", 9)
        assert [r.value for r in await run.read(doubled, count=1, timeout=30)] == [18]
        assert len(await run.read(doubled, from_beginning=True)) == 6


async def test_what_stops_the_worker_is_raised_instead_of_waiting(embedded_brokers, tmp_path):
    app = make_app(embedded_brokers, tmp_path, on_error="fail")
    numbers = app.topic("numbers")
    app.stream(numbers).map_values(lambda n: 10 // n).to(app.topic("quotients"))
    with pytest.raises(ProcessingError, match="ZeroDivisionError"):
        async with app.running() as run:
            await run.send(numbers, "zero", 0)
            await run.until(lambda: False, timeout=30)


async def test_until_takes_coroutine_functions_and_times_out(embedded_brokers, tmp_path):
    app, numbers, doubled = doubling_app(embedded_brokers, tmp_path)
    async with app.running() as run:
        await run.send(numbers, "k", 21)

        async def doubled_arrived() -> bool:
            return bool(await run.read(doubled))

        await run.until(doubled_arrived)
        with pytest.raises(TimeoutError, match="did not hold within 0.2s"):
            await run.until(lambda: False, timeout=0.2)


def test_bounded_runs_stop_after_count_records_or_timeout(embedded_brokers, tmp_path):
    app, numbers, doubled = doubling_app(embedded_brokers, tmp_path)

    async def send(first: int, last: int) -> None:
        for n in range(first, last):
            await app.send(numbers, f"k{n}", n)

    asyncio.run(send(0, 7))
    app.run(count=7)  # returns once the 7 records are processed (and committed, as on SIGTERM)
    asyncio.run(send(7, 9))
    app.run(timeout=1.5)  # processes what came since the last commit, then stops

    async def outputs() -> list:
        async with app.running() as run:
            return await run.read(doubled, from_beginning=True)

    assert sorted(r.value for r in asyncio.run(outputs())) == [n * 2 for n in range(9)]
    with pytest.raises(ValueError, match="count: must be a whole number"):
        app.run(count=0)
