"""`streams send` encodes and `streams tail` decodes registry records, with the serdes the app declares."""

from __future__ import annotations

import textwrap
import uuid

from aiokafka import AIOKafkaConsumer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from tests.conftest import create_topics
from tests.test_cli import json_lines, streams

APP = """
from dataclasses import dataclass

from streams import App
from streams.schema_registry import AvroSerde


@dataclass
class Order:
    id: str
    cents: int


app = App("reg-cli-{run}")
orders = app.topic("orders-{run}", partitions=1, value_serde=AvroSerde("{registry}"), value_type=Order)
"""


async def test_send_encodes_and_tail_decodes_avro_through_the_registry(brokers, schema_registry, tmp_path):
    run = uuid.uuid4().hex[:8]
    (tmp_path / f"regcli_{run}.py").write_text(textwrap.dedent(APP.format(run=run, registry=schema_registry)))
    spec, topic = f"regcli_{run}:app", f"orders-{run}"
    await create_topics(brokers, {topic: 1})
    sent = streams(tmp_path, "send", spec, topic, "--key", "o1", "--value", '{"id": "o1", "cents": 1250}',
                   brokers=brokers)
    assert sent.returncode == 0, sent.stderr
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=brokers, auto_offset_reset="earliest")
    await consumer.start()
    try:
        raw = (await consumer.getone()).value
    finally:
        await consumer.stop()
    assert raw[0] == 0, "Confluent wire format: magic byte 0, then the schema id"
    decode = AvroDeserializer(SchemaRegistryClient({"url": schema_registry}))
    assert decode(raw, SerializationContext(topic, MessageField.VALUE)) == {"id": "o1", "cents": 1250}
    tailed = streams(tmp_path, "tail", spec, topic, "--from-beginning", brokers=brokers)
    assert tailed.returncode == 0, tailed.stderr
    assert json_lines(tailed.stdout)[0]["value"] == {"id": "o1", "cents": 1250}
