"""pytest fixtures for testing stream apps; installed with the package, no set-up needed.

    def test_counts(topology_driver):
        driver = topology_driver(app)          # a TestDriver, closed after the test
        driver.pipe_input("clicks", "ada", {"kind": "view"})
        assert driver.read_key_values("counts") == [("ada", 1)]

    def test_end_to_end(embedded_brokers):
        app = App("clicks", brokers=embedded_brokers)   # a fresh in-process broker per test
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest


@pytest.fixture
def topology_driver() -> Iterator[Callable[..., Any]]:
    """Make TestDrivers for apps; every driver made in the test is closed after it."""
    from streams.testing import TestDriver

    drivers: list[TestDriver] = []

    def make(app: Any, partitions: Mapping[str, int] | None = None, wall_clock_ms: int = 0) -> TestDriver:
        driver = TestDriver(app, partitions=partitions, wall_clock_ms=wall_clock_ms)
        drivers.append(driver)
        return driver

    yield make
    for driver in drivers:
        driver.close()


@pytest.fixture
def embedded_brokers(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A memory:// broker URL of this test's own, dropped afterwards.

    STREAMS_BROKERS is unset for the test, since it would override the URL.
    """
    from streams.transport.embedded import close_broker

    monkeypatch.delenv("STREAMS_BROKERS", raising=False)
    url = f"memory://test-{uuid.uuid4().hex[:12]}"
    yield url
    close_broker(url)
