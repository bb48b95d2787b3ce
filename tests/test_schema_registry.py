"""Schema-registry serdes against the real registry (scripts/schema-registry): wire format, subjects,
caching, evolution and each failure mode.  No broker here; test_schema_registry_e2e.py adds it."""

from __future__ import annotations

import dataclasses
import json
import socket
import time
import urllib.request

import msgspec
import pydantic
import pytest

from streams.errors import SerializationError
from streams.schema_registry import (
    AvroSerde,
    IncompatibleSchemaError,
    JsonSchemaSerde,
    RegistryUnavailableError,
    SchemaNotFoundError,
    SchemaRegistry,
    SchemaRegistryError,
    WireFormatError,
)
from streams.schema_registry.client import RegisteredSchema


@dataclasses.dataclass
class Order:
    id: str
    amount: float


class OrderStruct(msgspec.Struct):
    id: str
    amount: float


class OrderModel(pydantic.BaseModel):
    id: str
    amount: float


ORDER_V1 = {"type": "record", "name": "Order", "namespace": "shop",
            "fields": [{"name": "id", "type": "string"}, {"name": "amount", "type": "double"}]}
ORDER_V2 = {**ORDER_V1, "fields": [*ORDER_V1["fields"], {"name": "currency", "type": "string", "default": "EUR"}]}
ORDER_BAD = {**ORDER_V1, "fields": [*ORDER_V1["fields"], {"name": "qty", "type": "int"}]}  # no default


@pytest.fixture
def registry(schema_registry) -> SchemaRegistry:
    return SchemaRegistry(schema_registry)


class CountingRegistry(SchemaRegistry):
    """The real client, counting the HTTP calls it makes."""

    calls = 0

    def _request(self, *args, **kwargs):
        self.calls += 1
        return super()._request(*args, **kwargs)


def subjects(url: str) -> list[str]:
    with urllib.request.urlopen(f"{url}/subjects", timeout=5) as response:
        return json.loads(response.read())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_registry_checks_new_versions_for_backward_compatibility(schema_registry):
    with urllib.request.urlopen(f"{schema_registry}/config", timeout=5) as response:
        assert json.loads(response.read())["compatibilityLevel"] == "BACKWARD"


@pytest.mark.parametrize("model", [Order, OrderStruct, OrderModel], ids=lambda m: m.__name__)
def test_avro_round_trip_of_models_in_the_wire_format(registry, topic_name, model):
    serde = AvroSerde(registry, model).bind(topic_name, False)
    data = serde.serialize(model(id="a", amount=2.5))
    schema_id = registry.lookup(f"{topic_name}-value", serde.schema)
    assert data[:5] == b"\x00" + schema_id.to_bytes(4, "big")
    assert data[5:] == b"\x02a" + msgspec.msgpack.encode(2.5)[1:][::-1]  # Avro: zig-zag length, LE double
    assert serde.deserialize(data) == model(id="a", amount=2.5)


def test_avro_with_a_json_schema_gives_dicts(registry, topic_name):
    serde = AvroSerde(registry, json.dumps(ORDER_V1)).bind(topic_name, False)
    values = [{"id": str(i), "amount": float(i)} for i in range(3)]
    assert serde.deserialize_many(serde.serialize_many([*values, None])) == [*values, None]


def test_schema_ids_are_cached_no_registry_call_per_record(schema_registry, topic_name):
    registry = CountingRegistry(schema_registry)
    writer = AvroSerde(registry, Order).bind(topic_name, False)
    datas = [writer.serialize(Order(str(i), i)) for i in range(500)] + writer.serialize_many([Order("x", 1)] * 500)
    assert registry.calls == 1  # the registration
    reader_registry = CountingRegistry(schema_registry)
    reader = AvroSerde(reader_registry, Order)
    assert len(reader.deserialize_many(datas)) == 1000 and reader.deserialize(datas[0]) == Order("0", 0)
    assert reader_registry.calls == 1  # the schema of the one id


def test_subject_name_strategies(registry, schema_registry, topic_name):
    record = {**ORDER_V1, "name": f"R{topic_name.replace('-', '')}"}
    fullname = f"shop.{record['name']}"
    AvroSerde(registry, record).bind(topic_name, False).serialize({"id": "a", "amount": 1})
    AvroSerde(registry, record).bind(topic_name, True).serialize({"id": "a", "amount": 1})
    AvroSerde(registry, record, subject_name_strategy="record_name").bind(topic_name, False).serialize(
        {"id": "a", "amount": 1})
    AvroSerde(registry, record, subject_name_strategy="topic_record_name").bind(topic_name, False).serialize(
        {"id": "a", "amount": 1})
    AvroSerde(registry, record, subject=f"{topic_name}-fixed").serialize({"id": "a", "amount": 1})
    AvroSerde(registry, record, subject_name_strategy=lambda t, k, r: f"{t}.custom").bind(topic_name, False) \
        .serialize({"id": "a", "amount": 1})
    found = set(subjects(schema_registry))
    assert {f"{topic_name}-value", f"{topic_name}-key", fullname, f"{topic_name}-{fullname}",
            f"{topic_name}-fixed", f"{topic_name}.custom"} <= found


def test_json_schema_title_is_the_record_name(registry, schema_registry, topic_name):
    serde = JsonSchemaSerde(registry, Order, subject_name_strategy="topic_record_name").bind(topic_name, False)
    serde.serialize(Order("a", 1))
    assert f"{topic_name}-Order" in subjects(schema_registry)


def test_a_topic_name_subject_needs_a_topic(registry):
    with pytest.raises(SerializationError, match="not bound to a topic"):
        AvroSerde(registry, Order).serialize(Order("a", 1))


def test_auto_register_off_finds_a_registered_schema_and_refuses_a_missing_one(registry, topic_name):
    registered = AvroSerde(registry, ORDER_V1).bind(topic_name, False)
    data = registered.serialize({"id": "a", "amount": 1.0})
    lookup_only = AvroSerde(SchemaRegistry(registry.url), ORDER_V1, auto_register=False).bind(topic_name, False)
    assert lookup_only.serialize({"id": "a", "amount": 1.0}) == data
    missing = AvroSerde(registry, ORDER_V1, auto_register=False).bind(f"{topic_name}-other", False)
    with pytest.raises(SchemaNotFoundError, match=f"subject '{topic_name}-other-value'"):
        missing.serialize({"id": "a", "amount": 1.0})


def test_use_latest_version_writes_with_the_subjects_latest_schema(registry, topic_name):
    AvroSerde(registry, ORDER_V1).bind(topic_name, False).serialize({"id": "a", "amount": 1.0})
    AvroSerde(registry, ORDER_V2).bind(topic_name, False).serialize({"id": "a", "amount": 1.0})
    latest = AvroSerde(SchemaRegistry(registry.url), use_latest_version=True).bind(topic_name, False)
    data = latest.serialize({"id": "b", "amount": 2.0})  # currency left out: the writer fills its default
    v2_id = registry.lookup(f"{topic_name}-value", AvroSerde(registry, ORDER_V2).schema)
    assert int.from_bytes(data[1:5], "big") == v2_id
    assert AvroSerde(registry).deserialize(data) == {"id": "b", "amount": 2.0, "currency": "EUR"}


def test_a_v2_reader_reads_v1_records_with_defaults(registry, topic_name):
    v1 = AvroSerde(registry, ORDER_V1).bind(topic_name, False)
    old = v1.serialize({"id": "a", "amount": 1.0})
    v2 = AvroSerde(registry, ORDER_V2).bind(topic_name, False)
    new = v2.serialize({"id": "b", "amount": 2.0, "currency": "USD"})
    assert old[1:5] != new[1:5]
    assert v2.deserialize_many([old, new]) == [{"id": "a", "amount": 1.0, "currency": "EUR"},
                                               {"id": "b", "amount": 2.0, "currency": "USD"}]
    assert v1.deserialize(new) == {"id": "b", "amount": 2.0}  # and forward: an older reader drops the new field


def test_an_incompatible_schema_is_refused_by_the_registry(registry, topic_name):
    AvroSerde(registry, ORDER_V1).bind(topic_name, False).serialize({"id": "a", "amount": 1.0})
    bad = AvroSerde(registry, ORDER_BAD).bind(topic_name, False)
    with pytest.raises(IncompatibleSchemaError, match=f"subject '{topic_name}-value'.*incompatible"):
        bad.serialize({"id": "a", "amount": 1.0, "qty": 1})


def test_wrong_magic_byte_short_record_and_unknown_schema_id(registry):
    serde = AvroSerde(registry, ORDER_V1)
    with pytest.raises(WireFormatError, match="starting with 01"):
        serde.deserialize(b"\x01\x00\x00\x00\x01\x02a")
    with pytest.raises(WireFormatError, match="3 bytes"):
        serde.deserialize(b"\x00\x00\x00")
    with pytest.raises(SchemaNotFoundError, match="schema id 987654"):
        serde.deserialize(b"\x00" + (987654).to_bytes(4, "big") + b"\x02a")


def test_a_payload_that_does_not_match_its_schema(registry, topic_name):
    serde = AvroSerde(registry, ORDER_V1).bind(topic_name, False)
    data = serde.serialize({"id": "a", "amount": 1.0})
    with pytest.raises(SerializationError, match="cannot read the Avro payload"):
        serde.deserialize(data[:-3])
    with pytest.raises(SerializationError, match="does not fit Avro schema shop.Order"):
        serde.serialize({"id": "a", "amount": "lots"})


def test_a_json_schema_id_read_as_avro_is_an_error(registry, topic_name):
    data = JsonSchemaSerde(registry, Order).bind(topic_name, False).serialize(Order("a", 1))
    with pytest.raises(SchemaRegistryError, match="is a JSON schema; AvroSerde reads and writes AVRO"):
        AvroSerde(registry).deserialize(data)


def test_json_schema_round_trip_and_validation(registry, topic_name):
    schema = {"title": "Order", "type": "object", "required": ["id", "amount"],
              "properties": {"id": {"type": "string"}, "amount": {"type": "number", "minimum": 0}}}
    serde = JsonSchemaSerde(registry, schema).bind(topic_name, False)
    data = serde.serialize({"id": "a", "amount": 1})
    assert data[0] == 0 and json.loads(data[5:]) == {"id": "a", "amount": 1}
    assert serde.deserialize(data) == {"id": "a", "amount": 1}
    with pytest.raises(SerializationError, match="at amount: -1 is less than the minimum of 0"):
        serde.serialize({"id": "a", "amount": -1})
    bad = data[:5] + b'{"id": 5, "amount": 1}'
    with pytest.raises(SerializationError, match="at id: 5 is not of type 'string'"):
        serde.deserialize(bad)
    assert JsonSchemaSerde(registry, schema, validate=False).deserialize(bad) == {"id": 5, "amount": 1}


def test_json_schema_with_a_model_gives_instances(registry, topic_name):
    serde = JsonSchemaSerde(registry, OrderModel).bind(topic_name, False)
    assert serde.deserialize(serde.serialize(OrderModel(id="a", amount=1))) == OrderModel(id="a", amount=1)


def test_a_registry_that_is_down_is_a_clear_error_and_is_not_asked_per_record():
    registry = CountingRegistry(f"http://127.0.0.1:{free_port()}", timeout=1, retry_interval=60)
    with pytest.raises(RegistryUnavailableError, match="not reachable.*start the registry or correct its URL"):
        registry.check()
    serde = AvroSerde(registry, ORDER_V1).bind("orders", False)
    record = b"\x00\x00\x00\x00\x07\x02a"
    for _ in range(3):
        with pytest.raises(RegistryUnavailableError, match="not reachable .* schema id 7"):
            serde.deserialize(record)
        with pytest.raises(RegistryUnavailableError, match="subject 'orders-value'"):
            serde.serialize({"id": "a", "amount": 1.0})
    assert registry.calls == 3  # check, one schema lookup, one registration: failures are remembered


def test_a_failure_is_asked_again_after_the_retry_interval(schema_registry, topic_name):
    registry = CountingRegistry(schema_registry, retry_interval=1.5)
    serde = AvroSerde(registry, ORDER_V1, auto_register=False).bind(topic_name, False)
    with pytest.raises(SchemaNotFoundError):
        serde.serialize({"id": "a", "amount": 1.0})
    AvroSerde(SchemaRegistry(schema_registry), ORDER_V1).bind(topic_name, False).serialize({"id": "a", "amount": 1})
    with pytest.raises(SchemaNotFoundError):
        serde.serialize({"id": "a", "amount": 1.0})  # remembered
    time.sleep(1.6)
    assert serde.serialize({"id": "a", "amount": 1.0})[0] == 0


def test_bad_settings_raise_value_errors_naming_them(registry):
    with pytest.raises(ValueError, match="schema registry url"):
        SchemaRegistry("127.0.0.1:8081")
    with pytest.raises(ValueError, match="timeout"):
        SchemaRegistry("http://127.0.0.1:8081", timeout=0)
    with pytest.raises(ValueError, match="subject_name_strategy must be one of"):
        AvroSerde(registry, ORDER_V1, subject_name_strategy="topic")
    with pytest.raises(ValueError, match="needs a schema with a record name"):
        AvroSerde(registry, subject_name_strategy="record_name")
    with pytest.raises(ValueError, match="not a valid Avro schema"):
        AvroSerde(registry, {"type": "record", "name": "X", "fields": [{"name": "a", "type": "nosuch"}]})
    with pytest.raises(ValueError, match="schema is not JSON"):
        AvroSerde(registry, "{not json")
    with pytest.raises(ValueError, match="not a valid JSON Schema"):
        JsonSchemaSerde(registry, {"type": 5})
    with pytest.raises(ValueError, match="schema_type must be one of"):
        registry.register("s", RegisteredSchema("{}", "XML"))


def test_stores_write_under_their_changelog_subjects(registry, schema_registry, topic_name):
    from streams import App, TestDriver
    from streams.windows import Tumbling

    app = App(topic_name, brokers="unused:9092")
    grouped = app.stream(f"{topic_name}-in", value_serde=AvroSerde(registry), value_type=Order).group_by_key()
    grouped.aggregate(lambda: Order("", 0.0), lambda k, o, total: Order(k, total.amount + o.amount), name="totals",
                      value_serde=AvroSerde(registry, Order))
    grouped.window(Tumbling(1000)).aggregate(lambda: Order("", 0.0), lambda k, o, t: Order(k, t.amount + o.amount),
                                             name="windowed", value_serde=AvroSerde(registry, Order))
    with TestDriver(app) as driver:
        writer = AvroSerde(registry, Order).bind(f"{topic_name}-in", False)
        for amount in (1.0, 2.5):
            driver.pipe_raw(f"{topic_name}-in", b"ada", writer.serialize(Order("x", amount)), timestamp=10)
        assert driver.store("totals").get("ada") == Order("ada", 3.5)
    found = set(subjects(schema_registry))
    assert {f"{topic_name}-totals-changelog-value", f"{topic_name}-windowed-changelog-value"} <= found
