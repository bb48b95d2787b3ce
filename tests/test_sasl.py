"""A worker on a SASL/PLAIN listener: the credentials reach the admin, consumer and producer clients."""

from __future__ import annotations

import pytest
from aiokafka.errors import KafkaConnectionError

from streams import App
from tests.conftest import SASL_CREDENTIALS, create_topics, unique_name
from tests.kafka_helpers import FAST_GROUP, decoded, produce, read_topic, running, wait_for


async def test_worker_runs_through_the_sasl_listener(brokers, sasl_brokers, tmp_path):
    src, out = unique_name("sasl-in"), unique_name("sasl-out")
    await create_topics(brokers, {src: 2, out: 2})
    app = App(unique_name("sasl"), state_dir=tmp_path, commit_interval=0.2, consumer_config=FAST_GROUP,
              **SASL_CREDENTIALS)
    app.configure(brokers=sasl_brokers)  # STREAMS_BROKERS names the plaintext listener; this overrides it
    app.stream(src).group_by_key().count(name="counts").to_stream().to(out)
    await produce(brokers, src, [("a", 1), ("b", 2), ("a", 3)])
    async with running(app):
        await wait_for(lambda: dict(app.store("counts").items()) == {"a": 2, "b": 1}, timeout=30)
    assert sorted(decoded(await read_topic(brokers, out, expected=3))) == [("a", 1), ("a", 2), ("b", 1)]


async def test_wrong_password_is_refused_at_start(brokers, sasl_brokers, tmp_path, caplog):
    app = App(unique_name("sasl-bad"), state_dir=tmp_path, **{**SASL_CREDENTIALS, "sasl_plain_password": "nope"})
    app.configure(brokers=sasl_brokers)
    app.stream(unique_name("sasl-in")).to(unique_name("sasl-out"))
    with pytest.raises(KafkaConnectionError):
        await app.create_worker().run()
    assert "Authentication failed" in caplog.text
