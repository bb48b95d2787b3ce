"""Typed keys and values: model serdes, derived schemas and value_type/key_type through the TestDriver.

Pure logic: no broker and no registry (test_schema_registry*.py use the real ones).
"""

from __future__ import annotations

import dataclasses
import datetime
import enum

import msgspec
import pydantic
import pytest

from streams import App
from streams.errors import SerializationError
from streams.models import ModelCodec, ModelSerde
from streams.schema_registry import avro_schema, json_schema
from streams.testing import TestDriver


@dataclasses.dataclass
class OrderDC:
    id: str
    amount: float
    items: list[int] = dataclasses.field(default_factory=list)


class OrderStruct(msgspec.Struct):
    id: str
    amount: float
    items: list[int] = []


class OrderModel(pydantic.BaseModel):
    id: str
    amount: float
    items: list[int] = []


@dataclasses.dataclass
class Summary:
    id: str
    cents: int


MODELS = [OrderDC, OrderStruct, OrderModel]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_model_serde_round_trips_instances_and_batches(model):
    serde = ModelSerde(model)
    order = model(id="a", amount=2.5, items=[1, 2])
    data = serde.serialize(order)
    assert msgspec.json.decode(data) == {"id": "a", "amount": 2.5, "items": [1, 2]}
    assert serde.deserialize(data) == order
    assert serde.serialize(None) is None and serde.deserialize(None) is None
    assert serde.deserialize_many([data, None]) == [order, None]
    assert serde.serialize_many([order, None]) == [data, None]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_model_serde_rejects_what_does_not_validate_naming_the_field(model):
    serde = ModelSerde(model)
    with pytest.raises(SerializationError, match=rf"not a valid {model.__name__}.*amount"):
        serde.deserialize(b'{"id": "a", "amount": "lots"}')
    with pytest.raises(SerializationError, match=f"not a valid {model.__name__}"):
        serde.deserialize(b"not json")
    with pytest.raises(SerializationError, match="expected a"):
        serde.serialize(Summary("a", 1))


def test_model_serde_writes_a_dict_that_validates_as_the_declared_type():
    serde = ModelSerde(OrderDC)
    assert serde.serialize({"id": "a", "amount": 1}) == b'{"id":"a","amount":1.0,"items":[]}'
    with pytest.raises(SerializationError, match="OrderDC"):
        serde.serialize({"id": "a"})


def test_model_types_are_checked_when_declared():
    with pytest.raises(ValueError, match="value_type must be a dataclass, a msgspec.Struct or a pydantic model"):
        ModelSerde(dict)
    with pytest.raises(ValueError, match="value_type"):
        App("unit", brokers="unused:9092").stream("in", value_type=int)
    with pytest.raises(ValueError, match="value_type needs the 'json' serde or a schema-registry serde"):
        App("unit", brokers="unused:9092").stream("in", value_serde="str", value_type=OrderDC)


def test_codec_builtins_keep_datetimes_for_avro_and_strings_for_json():
    @dataclasses.dataclass
    class Stamped:
        at: datetime.datetime

    codec = ModelCodec(Stamped)
    at = datetime.datetime(2024, 5, 1, 12, tzinfo=datetime.UTC)
    assert codec.to_builtins(Stamped(at)) == {"at": at}
    assert codec.to_json_values(Stamped(at)) == {"at": "2024-05-01T12:00:00Z"}
    assert codec.from_builtins({"at": at}) == Stamped(at)


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass
class Line:
    sku: str
    qty: int


@dataclasses.dataclass
class Basket:
    id: str
    lines: list[Line]
    main: Line
    colour: Colour
    at: datetime.datetime
    day: datetime.date
    tags: dict[str, str]
    note: str | None = None
    count: int = 0
    price: float | None = 1.5


def test_avro_schema_derived_from_a_dataclass():
    assert avro_schema(Basket) == {"type": "record", "name": "Basket", "fields": [
        {"name": "id", "type": "string"},
        {"name": "lines", "type": {"type": "array", "items": {"type": "record", "name": "Line", "fields": [
            {"name": "sku", "type": "string"}, {"name": "qty", "type": "long"}]}}},
        {"name": "main", "type": "Line"},
        {"name": "colour", "type": {"type": "enum", "name": "Colour", "symbols": ["red", "blue"]}},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "tags", "type": {"type": "map", "values": "string"}},
        {"name": "note", "type": ["null", "string"], "default": None},
        {"name": "count", "type": "long", "default": 0},
        {"name": "price", "type": ["double", "null"], "default": 1.5},
    ]}


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_avro_and_json_schemas_agree_across_model_kinds(model):
    fields = avro_schema(model)["fields"]
    assert fields == [{"name": "id", "type": "string"}, {"name": "amount", "type": "double"},
                      {"name": "items", "type": {"type": "array", "items": "long"}, "default": []}]
    schema = json_schema(model)
    assert schema["title"] == model.__name__
    assert schema["type"] == "object" and set(schema["required"]) == {"id", "amount"}


def test_avro_schema_refuses_types_it_cannot_map():
    @dataclasses.dataclass
    class Odd:
        value: complex

    with pytest.raises(ValueError, match="Odd.value: no Avro type"):
        avro_schema(Odd)


def make_app() -> App:
    return App("unit", brokers="unused:9092")


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_callbacks_get_instances_and_sinks_write_the_declared_type(model):
    seen = []
    app = make_app()
    (app.stream("orders", value_type=model)
        .peek(lambda k, v: seen.append(v))
        .map_values(lambda o: Summary(o.id, round(o.amount * 100)))
        .to("summaries", value_type=Summary))
    with TestDriver(app) as driver:
        driver.pipe_input("orders", "k", model(id="a", amount=2.5))
        driver.pipe_raw("orders", b"k", b'{"id": "b", "amount": 1}')
        out = driver.read_output("summaries", value_serde=ModelSerde(Summary))
    assert seen == [model(id="a", amount=2.5), model(id="b", amount=1.0)]
    assert [r.value for r in out] == [Summary("a", 250), Summary("b", 100)]


def test_a_value_that_does_not_validate_goes_to_the_dlq_with_the_error_in_a_header():
    app = make_app()
    app.stream("orders", value_type=OrderStruct).map_values(lambda o: o.amount).to("amounts")
    with TestDriver(app) as driver:
        driver.pipe_raw("orders", b"k1", b'{"id": "a", "amount": "no"}')
        driver.pipe_raw("orders", b"k2", b'{"id": "b", "amount": 3}')
        assert driver.read_key_values("amounts") == [("k2", 3.0)]
        [dead] = driver.read_output("unit-dlq", "bytes", "bytes")
    headers = dict(dead.headers)
    assert dead.value == b'{"id": "a", "amount": "no"}'
    assert headers["streams.error.type"] == b"SerializationError"
    assert headers["streams.error.message"] == (
        b"value is not a valid OrderStruct: Expected `float`, got `str` - at `$.amount`")


def test_a_value_of_another_type_at_a_typed_sink_goes_to_the_dlq():
    app = make_app()
    (app.stream("orders", value_type=OrderDC)
        .map_values(lambda o: Summary(o.id, 1) if o.amount > 1 else o)
        .to("out", value_type=OrderDC))
    with TestDriver(app) as driver:
        driver.pipe_input("orders", "k1", OrderDC("a", 1))
        driver.pipe_input("orders", "k2", OrderDC("b", 2))
        assert driver.read_output("out", value_serde=ModelSerde(OrderDC))[0].value == OrderDC("a", 1)
        [dead] = driver.read_output("unit-dlq", "bytes", "bytes")
    assert b"expected a OrderDC, got a Summary" in dict(dead.headers)["streams.error.message"]


def test_new_values_drop_the_declared_type_and_go_on_as_json():
    app = make_app()
    typed = app.stream("orders", value_type=OrderStruct)
    typed.map_values(lambda o: o.amount).to("amounts")
    typed.map_values(lambda o: OrderStruct(o.id.upper(), o.amount)).to("upper")
    typed.filter(lambda k, o: o.amount > 1).to("big")
    with TestDriver(app) as driver:
        driver.pipe_input("orders", "k", OrderStruct("a", 2.0))
        assert driver.read_key_values("amounts") == [("k", 2.0)]
        assert driver.read_key_values("upper") == [("k", {"id": "A", "amount": 2.0, "items": []})]
        assert driver.read_key_values("big", value_serde=ModelSerde(OrderStruct)) == [("k", OrderStruct("a", 2.0))]


def test_typed_keys_and_tables():
    @dataclasses.dataclass(frozen=True)
    class UserKey:
        region: str
        user: int

    app = make_app()
    table = app.table("users", key_type=UserKey, value_type=OrderStruct, name="users")
    table.to_stream().map_values(lambda o: o.amount).to("amounts")
    with TestDriver(app) as driver:
        driver.pipe_input("users", UserKey("eu", 1), OrderStruct("x", 4.0))
        assert driver.store("users").get(UserKey("eu", 1)) == OrderStruct("x", 4.0)
        assert driver.read_key_values("amounts", key_serde=ModelSerde(UserKey)) == [(UserKey("eu", 1), 4.0)]
