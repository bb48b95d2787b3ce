"""Schema-registry serdes in a running worker, with the real broker and the real registry.

Interoperability both ways with another client: records written by confluent-kafka's
AvroSerializer and JSONSerializer are read by a streams app, and what the app writes is read
by confluent-kafka's deserializers.  Bad records go to the DLQ; a registry that is down when
the worker starts stops it with a message that says so.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from streams import App
from streams.errors import StartupError
from streams.schema_registry import AvroSerde, JsonSchemaSerde, SchemaRegistry
from streams.windows import Tumbling
from tests.conftest import REPO, create_topics, unique_name
from tests.kafka_helpers import FAST_GROUP, read_topic, running

ORDER_AVRO = json.dumps({"type": "record", "name": "Order", "namespace": "shop", "fields": [
    {"name": "id", "type": "string"}, {"name": "amount", "type": "double"},
    {"name": "note", "type": ["null", "string"], "default": None}]})
ORDER_JSON = json.dumps({"title": "Order", "type": "object", "required": ["id", "amount"], "properties": {
    "id": {"type": "string"}, "amount": {"type": "number"}}})


@dataclasses.dataclass
class Order:
    id: str
    amount: float
    note: str | None = None


@dataclasses.dataclass
class Cents:
    id: str
    cents: int


def make_app(brokers: str, tmp_path) -> App:
    return App(unique_name("app"), brokers=brokers, state_dir=tmp_path, commit_interval=0.2,
               consumer_config=FAST_GROUP)


def produce_with(brokers: str, topic: str, serializer, values: list, raw: list[bytes] = ()) -> None:
    """Write values through a confluent-kafka serializer (and raw bytes after them) with confluent-kafka."""
    producer = Producer({"bootstrap.servers": brokers})
    context = SerializationContext(topic, MessageField.VALUE)
    for i, value in enumerate(values):
        producer.produce(topic, key=f"k{i}".encode(), value=serializer(value, context))
    for i, data in enumerate(raw):
        producer.produce(topic, key=f"bad{i}".encode(), value=data)
    assert producer.flush(10) == 0


def to_cents(order: Order) -> Cents:
    return Cents(order.id, round(order.amount * 100))


async def test_confluent_avro_in_streams_avro_out_read_by_confluent(brokers, schema_registry, tmp_path):
    source, sink = unique_name("orders"), unique_name("cents")
    await create_topics(brokers, {source: 2, sink: 2})
    confluent = SchemaRegistryClient({"url": schema_registry})
    produce_with(brokers, source, AvroSerializer(confluent, ORDER_AVRO),
                 [{"id": "a", "amount": 1.25, "note": "first"}, {"id": "b", "amount": 3.5, "note": None}],
                 raw=[b"\x07not the wire format", b"\x00\x00\x0f\x42\x3f\x02x"])  # magic byte 7; unknown id
    registry = SchemaRegistry(schema_registry)
    app = make_app(brokers, tmp_path)
    seen: list = []
    (app.stream(source, value_serde=AvroSerde(registry), value_type=Order)
        .peek(lambda k, v: seen.append(v))
        .map_values(to_cents)
        .to(sink, value_serde=AvroSerde(registry), value_type=Cents))
    async with running(app):
        out = await read_topic(brokers, sink, expected=2)
        dead = await read_topic(brokers, f"{app.app_id}-dlq", expected=2)
    assert sorted(seen, key=lambda o: o.id) == [Order("a", 1.25, "first"), Order("b", 3.5)]
    deserialize = AvroDeserializer(confluent)
    values = sorted((deserialize(r.value, SerializationContext(sink, MessageField.VALUE)) for r in out),
                    key=lambda v: v["id"])
    assert values == [{"id": "a", "cents": 125}, {"id": "b", "cents": 350}]
    errors = {r.key: dict(r.headers) for r in dead}
    assert errors[b"bad0"]["streams.error.type"] == b"WireFormatError"
    assert errors[b"bad1"]["streams.error.type"] == b"SchemaNotFoundError"
    assert b"schema id 999999" in errors[b"bad1"]["streams.error.message"]
    assert confluent.get_latest_version(f"{sink}-value").schema.schema_type == "AVRO"


async def test_confluent_json_schema_in_streams_json_schema_out_read_by_confluent(brokers, schema_registry, tmp_path):
    source, sink = unique_name("orders"), unique_name("cents")
    await create_topics(brokers, {source: 1, sink: 1})
    confluent = SchemaRegistryClient({"url": schema_registry})
    produce_with(brokers, source, JSONSerializer(ORDER_JSON, confluent),
                 [{"id": "a", "amount": 1.25}, {"id": "b", "amount": 2}])
    registry = SchemaRegistry(schema_registry)
    app = make_app(brokers, tmp_path)
    (app.stream(source, value_serde=JsonSchemaSerde(registry), value_type=Order)
        .map_values(to_cents)
        .to(sink, value_serde=JsonSchemaSerde(registry), value_type=Cents))
    async with running(app):
        out = await read_topic(brokers, sink, expected=2)
    deserialize = JSONDeserializer(None, schema_registry_client=confluent)
    assert [deserialize(r.value, SerializationContext(sink, MessageField.VALUE)) for r in out] == [
        {"id": "a", "cents": 125}, {"id": "b", "cents": 200}]


async def test_a_value_that_does_not_validate_as_the_model_goes_to_the_dlq(brokers, schema_registry, tmp_path):
    source, sink = unique_name("orders"), unique_name("ids")
    await create_topics(brokers, {source: 1, sink: 1})
    confluent = SchemaRegistryClient({"url": schema_registry})
    # the writer's schema lets anything through; the model does not
    loose = json.dumps({"$schema": "http://json-schema.org/draft-07/schema#", "title": "Order", "type": "object"})
    produce_with(brokers, source, JSONSerializer(loose, confluent), [{"id": "a", "amount": 1}, {"id": "b"}])
    app = make_app(brokers, tmp_path)
    app.stream(source, value_serde=JsonSchemaSerde(schema_registry, validate=False), value_type=Order) \
        .map_values(lambda o: o.id).to(sink)
    async with running(app):
        out = await read_topic(brokers, sink, expected=1)
        [dead] = await read_topic(brokers, f"{app.app_id}-dlq", expected=1)
    assert [r.value for r in out] == [b'"a"']
    assert dict(dead.headers)["streams.error.message"] == (
        b"value is not a valid Order: Object missing required field `amount`")


async def test_a_registry_that_is_down_at_start_stops_the_worker(brokers, tmp_path):
    app = make_app(brokers, tmp_path)
    app.stream("never-read", value_serde=AvroSerde("http://127.0.0.1:9/apis/ccompat/v7")).to("never-written")
    with pytest.raises(StartupError, match="cannot start: schema registry at http://127.0.0.1:9/apis/ccompat/v7 "
                                           "is not reachable .* start the registry or correct its URL"):
        await app.create_worker().run()


def test_the_worker_command_says_the_registry_is_down(tmp_path):
    (tmp_path / "down_app.py").write_text(
        "from streams import App\n"
        "from streams.schema_registry import AvroSerde\n"
        "app = App('down', brokers='127.0.0.1:9')\n"
        "app.stream('in', value_serde=AvroSerde('http://127.0.0.1:9')).to('out')\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}"}
    env.pop("STREAMS_BROKERS", None)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "streams", "worker", "down_app:app"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr  # a user's mistake, as every command reports one
    assert done.stderr.strip().splitlines()[-2].startswith(
        "error: cannot start: schema registry at http://127.0.0.1:9 is not reachable")
    assert "Traceback" not in done.stderr
    assert time.monotonic() - started < 60


async def test_avro_through_a_repartition_and_a_windowed_aggregate(brokers, schema_registry, tmp_path):
    source, sink = unique_name("orders"), unique_name("totals")
    await create_topics(brokers, {source: 2, sink: 1})
    registry = SchemaRegistry(schema_registry)
    writer = AvroSerde(registry, Order).bind(source, False)
    base = int(time.time() * 1000) // 60_000 * 60_000 - 120_000
    producer = Producer({"bootstrap.servers": brokers})
    for i, (customer, amount) in enumerate([("ada", 1.0), ("bo", 2.0), ("ada", 3.0)]):
        producer.produce(source, key=f"o{i}".encode(), value=writer.serialize(Order(f"o{i}", amount, customer)),
                         timestamp=base + i)
    assert producer.flush(10) == 0
    app = make_app(brokers, tmp_path)
    (app.stream(source, value_serde=AvroSerde(registry), value_type=Order)
        .group_by(lambda key, order: order.note, name="by-customer")  # the note carries the customer
        .window(Tumbling(timedelta(minutes=1)))
        .aggregate(lambda: 0.0, lambda customer, order, total: total + order.amount, name="totals")
        .to_stream()
        .map(lambda window, total: (window.key, total))
        .to(sink, key_serde="str"))
    async with running(app):
        out = await read_topic(brokers, sink, expected=3)
    assert sorted((r.key, json.loads(r.value)) for r in out) == [(b"ada", 1.0), (b"ada", 4.0), (b"bo", 2.0)]
    repartition = f"{app.app_id}-by-customer-repartition-value"
    assert registry.latest(repartition)[1].text == AvroSerde(registry, Order).schema.text
