"""Test set-up: a real Kafka broker and a real schema registry for the session, and unique topics per test.

The broker comes from scripts/kafka unless STREAMS_BROKERS names one already
running, the registry from scripts/schema-registry unless STREAMS_SCHEMA_REGISTRY
names one.  Tests of them never skip: if one cannot start, the session fails with
its log tail.  Each is started only when a test asks for it.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

REPO = Path(__file__).resolve().parent.parent
KAFKA_SCRIPT = REPO / "scripts" / "kafka"
REGISTRY_SCRIPT = REPO / "scripts" / "schema-registry"


def _script(command: str, script: Path = KAFKA_SCRIPT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(script), command], capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="session")
def brokers() -> str:
    """Bootstrap address of a running broker, started here if needed."""
    configured = os.environ.get("STREAMS_BROKERS")
    if configured:
        yield configured
        return
    already_running = _script("status").returncode == 0
    started = _script("start")
    if started.returncode != 0:
        pytest.fail(f"Kafka broker did not start:\n{started.stdout}\n{started.stderr}", pytrace=False)
    found = re.findall(r"[\w.-]+:\d+", started.stdout)
    if not found:
        pytest.fail(f"scripts/kafka start printed no bootstrap address:\n{started.stdout}", pytrace=False)
    address = found[-1]
    os.environ["STREAMS_BROKERS"] = address
    yield address
    os.environ.pop("STREAMS_BROKERS", None)
    if not already_running:
        _script("stop")


@pytest.fixture(scope="session")
def sasl_brokers(brokers) -> str:
    """The SASL_PLAINTEXT (PLAIN) listener of the development broker, or STREAMS_SASL_BROKERS for your own Kafka."""
    configured = os.environ.get("STREAMS_SASL_BROKERS")
    if configured:
        return configured
    if "STREAMS_KAFKA_SASL_PORT" in os.environ:
        return f"127.0.0.1:{os.environ['STREAMS_KAFKA_SASL_PORT']}"
    host, _, port = brokers.split(",")[0].rpartition(":")
    return f"{host}:{int(port) + 2}"


SASL_CREDENTIALS = {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN",
                    "sasl_plain_username": os.environ.get("STREAMS_SASL_USERNAME", "streams"),
                    "sasl_plain_password": os.environ.get("STREAMS_SASL_PASSWORD", "streams-dev-secret")}


@pytest.fixture(scope="session")
def schema_registry() -> str:
    """URL of a running schema registry's Confluent-compatible API, started here if needed."""
    configured = os.environ.get("STREAMS_SCHEMA_REGISTRY")
    if configured:
        yield configured
        return
    already_running = _script("status", REGISTRY_SCRIPT).returncode == 0
    started = _script("start", REGISTRY_SCRIPT)
    if started.returncode != 0:
        pytest.fail(f"schema registry did not start:\n{started.stdout}\n{started.stderr}", pytrace=False)
    found = re.findall(r"https?://\S+", started.stdout)
    if not found:
        pytest.fail(f"scripts/schema-registry start printed no address:\n{started.stdout}", pytrace=False)
    url = found[-1]
    os.environ["STREAMS_SCHEMA_REGISTRY"] = url
    yield url
    os.environ.pop("STREAMS_SCHEMA_REGISTRY", None)
    if not already_running:
        _script("stop", REGISTRY_SCRIPT)


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def create_topics(brokers: str, names_partitions: dict[str, int], config: dict | None = None,
                        timeout: float = 30.0) -> None:
    """Create topics and return once the broker lists each with its partitions.

    A broker that has just started (the session's, or one a fault test restarted)
    can refuse a creation while it catches up, or list a new topic a moment late;
    the broker's answer is checked rather than assumed, and refused creations retried.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=brokers)
    await admin.start()
    pending = dict(names_partitions)
    deadline = time.monotonic() + timeout
    try:
        while True:
            response = await admin.create_topics([NewTopic(name, partitions, 1, topic_configs=dict(config or {}))
                                                  for name, partitions in pending.items()])
            refused = {topic: (code, message) for topic, code, message in response.topic_errors
                       if code not in (0, TopicAlreadyExistsError.errno)}
            listed = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(list(pending))
                      if t["error_code"] == 0}
            pending = {name: n for name, n in pending.items() if listed.get(name) != n}
            if not pending:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"topics not created within {timeout}s: {sorted(pending)}; refused: {refused}")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


@pytest.fixture
def topic_name(request) -> str:
    """A fresh topic name prefix for this test."""
    return unique_name(request.node.name.split("[")[0].replace("_", "-")[:40])


@pytest.fixture(params=["memory", "kafka"])
def broker_url(request) -> str:
    """The test runs twice: on a memory:// broker of its own, and on the session's Kafka broker."""
    if request.param == "kafka":
        yield request.getfixturevalue("brokers")
        return
    from streams.transport.embedded import close_broker

    url = f"memory://test-{uuid.uuid4().hex[:12]}"
    yield url
    close_broker(url)


@pytest.fixture(scope="session")
def kafka_streams_oracle() -> str:
    """Classpath of the Kafka Streams reference program (tests/oracle), built with Maven once per session.

    A failed build fails the tests that need it; it never skips them.
    """
    from tests.oracle_support import build_oracle

    return build_oracle()
