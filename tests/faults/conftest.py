"""Fixtures of the fault-injection suite: a dedicated broker per test that faults the broker."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from tests.faults.broker import KAFKA_SCRIPT, DedicatedBroker, shared_libs


@pytest.fixture(scope="session")
def kafka_libs() -> None:
    """Fetch the broker jars once, where the session broker keeps them."""
    libs = shared_libs()
    done = subprocess.run([sys.executable, str(KAFKA_SCRIPT), "fetch"], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "STREAMS_KAFKA_LIBS": str(libs)})
    if done.returncode != 0:
        pytest.fail(f"fetching the Kafka jars failed:\n{done.stdout}\n{done.stderr}", pytrace=False)


@pytest.fixture(scope="module")
def module_broker(kafka_libs, tmp_path_factory) -> DedicatedBroker:
    """A broker of this test module alone, on free ports, with its data in a tmp folder; stopped at the end."""
    broker = DedicatedBroker(tmp_path_factory.mktemp("kafka"))
    yield broker
    broker.stop()


@pytest.fixture
def dedicated_broker(module_broker) -> DedicatedBroker:
    """The module's broker, running: each test that faults it finds it up, whatever the test before did."""
    try:
        module_broker.ensure_running()
    except Exception as exc:
        pytest.fail(f"dedicated broker did not start: {exc}\n{module_broker.log_tail()}", pytrace=False)
    return module_broker


@pytest.fixture(autouse=True)
def quiet_test_clients():
    """The test's own clients (inputs, output readers) log every failed request while a broker is down."""
    logger = logging.getLogger("aiokafka")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)
