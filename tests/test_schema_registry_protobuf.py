"""ProtobufSerde against the real registry: message indexes, reading without a class, interoperability
with confluent-kafka's Protobuf serdes, and a worker on the real broker.

The message classes are built from a FileDescriptorProto here, as protoc's output would define them.
"""

from __future__ import annotations

import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from streams import App
from streams.errors import SerializationError
from streams.schema_registry import ProtobufSerde, SchemaRegistry
from streams.schema_registry.protobuf import decode_indexes, encode_indexes
from tests.conftest import create_topics, unique_name
from tests.kafka_helpers import FAST_GROUP, read_topic, running

Field = descriptor_pb2.FieldDescriptorProto


def built_classes(package: str, names: tuple[str, ...], *files: descriptor_pb2.FileDescriptorProto) -> dict[str, type]:
    """The message classes `names` of `package`, as protoc's output would define them from `files` (in order)."""
    pool = descriptor_pool.DescriptorPool()
    for file in files:
        pool.Add(file)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.{name}")) for name in names}


def shop_classes(package: str) -> dict[str, type]:
    """Order (with a nested Line) and Refund, in one file of `package`."""
    file = descriptor_pb2.FileDescriptorProto(name=f"{package}/shop.proto", package=package, syntax="proto3")
    order = file.message_type.add(name="Order")
    order.field.add(name="id", number=1, type=Field.TYPE_STRING, label=Field.LABEL_OPTIONAL)
    order.field.add(name="amount", number=2, type=Field.TYPE_DOUBLE, label=Field.LABEL_OPTIONAL)
    order.field.add(name="lines", number=3, type=Field.TYPE_MESSAGE, label=Field.LABEL_REPEATED,
                    type_name=f".{package}.Order.Line")
    line = order.nested_type.add(name="Line")
    line.field.add(name="sku", number=1, type=Field.TYPE_STRING, label=Field.LABEL_OPTIONAL)
    line.field.add(name="qty", number=2, type=Field.TYPE_INT32, label=Field.LABEL_OPTIONAL)
    refund = file.message_type.add(name="Refund")
    refund.field.add(name="order_id", number=1, type=Field.TYPE_STRING, label=Field.LABEL_OPTIONAL)
    return built_classes(package, ("Order", "Order.Line", "Refund"), file)


@pytest.fixture
def shop(topic_name) -> dict[str, type]:
    return shop_classes(topic_name.replace("-", "_"))


def test_message_indexes_encode_as_confluent_clients_do():
    assert encode_indexes([0]) == b"\x00"
    assert encode_indexes([1]) == b"\x02\x02"
    assert encode_indexes([0, 0]) == b"\x04\x00\x00"
    assert encode_indexes([2, 70]) == b"\x04\x04\x8c\x01"
    for path in ([0], [1], [0, 0], [2, 70], [3, 1, 4]):
        assert decode_indexes(b"xx" + encode_indexes(path) + b"rest", 2) == (path, 2 + len(encode_indexes(path)))
    with pytest.raises(SerializationError, match="end before the record does"):
        decode_indexes(b"\x04\x02", 0)


def test_round_trip_with_message_indexes(schema_registry, topic_name, shop):
    registry = SchemaRegistry(schema_registry)
    Order, Line, Refund = shop["Order"], shop["Order.Line"], shop["Refund"]
    order = Order(id="a", amount=2.5, lines=[Line(sku="x", qty=2)])
    orders = ProtobufSerde(registry, Order).bind(topic_name, False)
    data = orders.serialize(order)
    assert data[5:6] == b"\x00" and data[6:] == order.SerializeToString()  # the first message: [0]
    assert orders.deserialize(data) == order
    lines = ProtobufSerde(registry, Line, subject_name_strategy="record_name").bind(topic_name, False)
    assert lines.serialize(Line(sku="y"))[5:8] == b"\x04\x00\x00"  # nested in the first: [0, 0]
    refunds = ProtobufSerde(registry, Refund, subject_name_strategy="topic_record_name").bind(topic_name, False)
    refund_data = refunds.serialize({"order_id": "a"})  # a dict is converted to the class
    assert refund_data[5:7] == b"\x02\x02" and refunds.deserialize(refund_data) == Refund(order_id="a")
    with pytest.raises(SerializationError, match=r"the record is a .*Refund .* this serde reads .*Order"):
        orders.deserialize(refund_data)
    generic = ProtobufSerde(registry)  # no class: built from the writer's registered file
    read = generic.deserialize(data)
    assert read.DESCRIPTOR.full_name.endswith(".Order") and read.lines[0].qty == 2


async def test_confluent_protobuf_in_streams_protobuf_out(brokers, schema_registry, tmp_path, shop):
    Order, Refund = shop["Order"], shop["Refund"]
    source, sink = unique_name("orders"), unique_name("refunds")
    await create_topics(brokers, {source: 1, sink: 1})
    confluent = SchemaRegistryClient({"url": schema_registry})
    serializer = ProtobufSerializer(Order, confluent, {"use.deprecated.format": False})
    producer = Producer({"bootstrap.servers": brokers})
    for i, amount in enumerate([5.0, -1.0]):
        producer.produce(source, key=f"o{i}".encode(), value=serializer(
            Order(id=f"o{i}", amount=amount), SerializationContext(source, MessageField.VALUE)))
    assert producer.flush(10) == 0
    app = App(unique_name("app"), brokers=brokers, state_dir=tmp_path, commit_interval=0.2,
              consumer_config=FAST_GROUP)
    registry = SchemaRegistry(schema_registry)
    (app.stream(source, value_serde=ProtobufSerde(registry), value_type=Order)
        .filter(lambda key, order: order.amount < 0)
        .map_values(lambda order: Refund(order_id=order.id))
        .to(sink, value_serde=ProtobufSerde(registry), value_type=Refund))
    async with running(app):
        [record] = await read_topic(brokers, sink, expected=1)
    deserialize = ProtobufDeserializer(Refund, {"use.deprecated.format": False})
    assert deserialize(record.value, SerializationContext(sink, MessageField.VALUE)) == Refund(order_id="o1")


def test_protobuf_settings(schema_registry):
    with pytest.raises(ValueError, match="generated protobuf message class"):
        ProtobufSerde(schema_registry, dict)
    with pytest.raises(ValueError, match="value_type with ProtobufSerde must be a generated message class"):
        App("unit", brokers="unused:9092").stream("in", value_serde=ProtobufSerde(schema_registry), value_type=dict)


def billing_classes(package: str) -> dict[str, type]:
    """Order and Invoice in billing.proto, which imports money.proto (Money) and Google's timestamp.proto."""
    from google.protobuf import timestamp_pb2

    money = descriptor_pb2.FileDescriptorProto(name=f"{package}/money.proto", package=package, syntax="proto3")
    money.message_type.add(name="Money").field.add(name="cents", number=1, type=Field.TYPE_INT64,
                                                   label=Field.LABEL_OPTIONAL)
    billing = descriptor_pb2.FileDescriptorProto(name=f"{package}/billing.proto", package=package, syntax="proto3",
                                                 dependency=[money.name, "google/protobuf/timestamp.proto"])
    for name in ("Order", "Invoice"):
        message = billing.message_type.add(name=name)
        message.field.add(name="id", number=1, type=Field.TYPE_STRING, label=Field.LABEL_OPTIONAL)
        message.field.add(name="price", number=2, type=Field.TYPE_MESSAGE, type_name=f".{package}.Money",
                          label=Field.LABEL_OPTIONAL)
        message.field.add(name="at", number=3, type=Field.TYPE_MESSAGE, type_name=".google.protobuf.Timestamp",
                          label=Field.LABEL_OPTIONAL)
    timestamp = descriptor_pb2.FileDescriptorProto.FromString(timestamp_pb2.DESCRIPTOR.serialized_pb)
    return built_classes(package, ("Order", "Invoice", "Money"), timestamp, money, billing)


@pytest.fixture
def billing(topic_name) -> dict[str, type]:
    return billing_classes(topic_name.replace("-", "_"))


def test_imported_files_are_registered_as_references(schema_registry, topic_name, billing):
    registry = SchemaRegistry(schema_registry)
    Order = billing["Order"]
    order = Order(id="a", price={"cents": 250}, at={"seconds": 1_700_000_000})
    data = ProtobufSerde(registry, Order).bind(topic_name, False).serialize(order)
    package = topic_name.replace("-", "_")
    latest = SchemaRegistryClient({"url": schema_registry}).get_latest_version(f"{topic_name}-value")
    assert [(r.name, r.subject, r.version) for r in latest.schema.references] == [
        (f"{package}/money.proto", f"{package}/money.proto", 1)]  # Google's timestamp.proto: known, no reference
    assert ProtobufSerde(registry, Order).deserialize(data) == order
    generic = ProtobufSerde(SchemaRegistry(schema_registry)).deserialize(data)  # built from the references
    assert (generic.id, generic.price.cents, generic.at.seconds) == ("a", 250, 1_700_000_000)


def test_without_auto_register_an_unregistered_import_is_a_clear_error(schema_registry, topic_name, billing):
    serde = ProtobufSerde(schema_registry, billing["Order"], auto_register=False).bind(topic_name, False)
    with pytest.raises(SerializationError, match="money.proto"):
        serde.serialize(billing["Order"](id="a"))


async def test_confluent_and_streams_agree_on_references(brokers, schema_registry, tmp_path, billing):
    Order, Invoice = billing["Order"], billing["Invoice"]
    source, sink = unique_name("orders"), unique_name("invoices")
    await create_topics(brokers, {source: 1, sink: 1})
    confluent = SchemaRegistryClient({"url": schema_registry})
    serializer = ProtobufSerializer(Order, confluent, {"use.deprecated.format": False})
    producer = Producer({"bootstrap.servers": brokers})
    producer.produce(source, key=b"o1", value=serializer(
        Order(id="o1", price={"cents": 999}, at={"seconds": 60}), SerializationContext(source, MessageField.VALUE)))
    assert producer.flush(10) == 0
    app = App(unique_name("app"), brokers=brokers, state_dir=tmp_path, commit_interval=0.2,
              consumer_config=FAST_GROUP)
    registry = SchemaRegistry(schema_registry)
    (app.stream(source, value_serde=ProtobufSerde(registry))  # no class: read through the references
        .map_values(lambda order: Invoice(id=f"inv-{order.id}", price={"cents": order.price.cents * 2},
                                          at={"seconds": order.at.seconds}))
        .to(sink, value_serde=ProtobufSerde(registry), value_type=Invoice))
    async with running(app):
        [record] = await read_topic(brokers, sink, expected=1)
    deserialize = ProtobufDeserializer(Invoice, {"use.deprecated.format": False})
    assert deserialize(record.value, SerializationContext(sink, MessageField.VALUE)) == Invoice(
        id="inv-o1", price={"cents": 1998}, at={"seconds": 60})
