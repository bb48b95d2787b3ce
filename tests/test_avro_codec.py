"""The C Avro codec agrees with fastavro byte for byte, and hands back whatever it cannot take.

The codec (streams/schema_registry/_avrofast.c) is only a fast path: for every
schema it compiles, a value it encodes must give fastavro's bytes, a payload it
decodes must give fastavro's value, and anything else must raise so that
AvroSerde redoes the record with fastavro.  Hypothesis draws the schemas, valid
values, values of the wrong shape, and damaged payloads.
"""

from __future__ import annotations

import datetime
import itertools
import math
from io import BytesIO
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams import AvroSerde, SerializationError
from streams.schema_registry import avro_plan
from streams.schema_registry.client import RegisteredSchema

PRIMITIVES = ["null", "boolean", "int", "long", "float", "double", "bytes", "string"]
UTC = datetime.UTC
MOMENTS = {"min_value": datetime.datetime(1900, 1, 1), "max_value": datetime.datetime(2200, 1, 1)}
LOGICAL = {  # a logical type on a primitive, and the values fastavro writes for it
    ("long", "timestamp-millis"): st.datetimes(**MOMENTS, timezones=st.just(UTC)) | st.integers(-2**40, 2**40),
    ("long", "timestamp-micros"): st.datetimes(**MOMENTS, timezones=st.just(UTC)),
    ("long", "local-timestamp-millis"): st.datetimes(**MOMENTS),
    ("int", "date"): st.dates(),
    ("int", "time-millis"): st.times(),
    ("long", "time-micros"): st.times(),
    ("string", "uuid"): st.uuids(),
    ("string", "no-such-type"): st.text(max_size=5),
}
_names = itertools.count()


def test_the_codec_is_built():
    # setup.py builds it wherever a C compiler is, as on every machine the suite runs on
    assert avro_plan.available()


@st.composite
def avro_types(draw: st.DrawFn, depth: int = 0) -> Any:
    """A type the codec compiles: primitives, records, enums, fixed, arrays, maps, unions of null and one type."""
    kinds = ["primitive", "logical", "enum", "fixed"] + (["record", "array", "map", "optional"] if depth < 3 else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "primitive":
        name = draw(st.sampled_from(PRIMITIVES))
        return draw(st.sampled_from([name, {"type": name}]))
    if kind == "logical":
        base, logical = draw(st.sampled_from(sorted(LOGICAL)))
        return {"type": base, "logicalType": logical}
    if kind == "enum":
        symbols = draw(st.lists(st.from_regex(r"[A-Z][A-Z0-9_]{0,5}", fullmatch=True), min_size=1, max_size=5,
                                unique=True))
        return {"type": "enum", "name": f"E{next(_names)}", "symbols": symbols}
    if kind == "fixed":
        return {"type": "fixed", "name": f"F{next(_names)}", "size": draw(st.integers(0, 12))}
    if kind == "array":
        return {"type": "array", "items": draw(avro_types(depth + 1))}
    if kind == "map":
        return {"type": "map", "values": draw(avro_types(depth + 1))}
    if kind == "optional":
        other = draw(avro_types(depth + 1).filter(
            lambda t: t not in ("null", {"type": "null"}) and not isinstance(t, list)))
        return draw(st.sampled_from([["null", other], [other, "null"]]))
    fields = draw(st.lists(avro_types(depth + 1), max_size=5))
    return {"type": "record", "name": f"R{next(_names)}", "namespace": "test",
            "fields": [{"name": f"f{i}", "type": t} for i, t in enumerate(fields)]}


def records() -> st.SearchStrategy[dict]:
    return st.lists(avro_types(1), min_size=1, max_size=6).map(lambda types: {
        "type": "record", "name": f"Top{next(_names)}", "namespace": "test",
        "fields": [{"name": f"f{i}", "type": t} for i, t in enumerate(types)]})


def values(schema: Any) -> st.SearchStrategy[Any]:
    """Values fastavro writes for `schema`."""
    kind = schema if isinstance(schema, str) else "optional" if isinstance(schema, list) else schema["type"]
    simple = {"null": st.none(), "boolean": st.booleans(), "int": st.integers(-2**31, 2**31 - 1),
              "long": st.integers(-2**63, 2**63 - 1), "float": st.floats(width=32), "double": st.floats(),
              "bytes": st.binary(max_size=20), "string": st.text(max_size=20)}
    if isinstance(schema, dict) and "logicalType" in schema:
        return LOGICAL[schema["type"], schema["logicalType"]]
    if kind in simple:
        return simple[kind]
    if kind == "enum":
        return st.sampled_from(schema["symbols"])
    if kind == "fixed":
        return st.binary(min_size=schema["size"], max_size=schema["size"])
    if kind == "array":
        return st.lists(values(schema["items"]), max_size=4)
    if kind == "map":
        return st.dictionaries(st.text(max_size=6), values(schema["values"]), max_size=4)
    if kind == "optional":
        other = schema[1] if schema[0] == "null" else schema[0]
        return st.none() | values(other)
    return st.fixed_dictionaries({f["name"]: values(f["type"]) for f in schema["fields"]})


ANYTHING = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5) | st.binary(max_size=5)
    | st.sampled_from(["A", "B0", "\ud800"]),
    lambda inner: st.lists(inner, max_size=3) | st.tuples(inner, inner) | st.dictionaries(st.text(max_size=3), inner,
                                                                                          max_size=3),
    max_leaves=8)


def shuffled(schema: dict) -> st.SearchStrategy[dict]:
    """Records of `schema` with some fields replaced by values of any type, or left out."""
    fields = {f["name"]: values(f["type"]) | ANYTHING for f in schema["fields"]}
    return st.fixed_dictionaries({}, optional=fields)


def fastavro_bytes(schema: Any, value: Any) -> bytes:
    out = BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), value)
    return out.getvalue()


def fastavro_value(schema: Any, payload: bytes) -> Any:
    return fastavro.schemaless_reader(BytesIO(payload), fastavro.parse_schema(schema), None)


def same(a: Any, b: Any) -> bool:
    """Equal values of equal types; NaN is the same as NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return a == b


FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.data())
def test_valid_values_encode_and_decode_as_fastavro_does(data):
    schema = data.draw(records())
    plan = avro_plan.compiled(schema)
    assert plan is not None
    value = data.draw(values(schema))
    expected = fastavro_bytes(schema, value)
    assert avro_plan.encode(plan, value) == expected
    assert same(avro_plan.decode(plan, b"\0\0\0\0\1" + expected, 5), fastavro_value(schema, expected))


@FAST
@given(st.data())
def test_a_value_the_codec_takes_is_one_fastavro_writes_the_same(data):
    schema = data.draw(records())
    plan = avro_plan.compiled(schema)
    value = data.draw(shuffled(schema))
    try:
        ours = avro_plan.encode(plan, value)
    except ValueError:
        return  # AvroSerde redoes it with fastavro
    assert ours == fastavro_bytes(schema, value)


@FAST
@given(st.data())
def test_a_payload_the_codec_reads_is_one_fastavro_reads_the_same(data):
    schema = data.draw(records())
    plan = avro_plan.compiled(schema)
    payload = bytearray(fastavro_bytes(schema, data.draw(values(schema))))
    for _ in range(data.draw(st.integers(1, 3))):
        if payload and data.draw(st.booleans()):
            payload[data.draw(st.integers(0, len(payload) - 1))] = data.draw(st.integers(0, 255))
        else:
            del payload[data.draw(st.integers(0, len(payload))):]
    payload = bytes(payload)
    try:
        ours = avro_plan.decode(plan, payload, 0)
    except ValueError:
        return  # AvroSerde redoes it with fastavro
    assert same(ours, fastavro_value(schema, payload))


@pytest.mark.parametrize("schema", [
    {"type": "record", "name": "T", "fields": [{"name": "price", "type": {
        "type": "fixed", "name": "Price", "size": 8, "logicalType": "decimal", "precision": 10, "scale": 2}}]},
    {"type": "record", "name": "U", "fields": [{"name": "v", "type": ["null", "string", "long"]}]},
    {"type": "record", "name": "Node", "fields": [{"name": "next", "type": ["null", "Node"]}]},
    {"type": "record", "name": "W", "fields": [{"name": "v", "type": {"type": {"type": "long"},
                                                                      "logicalType": "timestamp-millis"}}]},
])
def test_schemas_the_codec_leaves_to_fastavro(schema):
    assert avro_plan.compiled(schema) is None


def test_named_types_are_reused_by_name():
    schema = {"type": "record", "name": "Pair", "namespace": "geo", "fields": [
        {"name": "a", "type": {"type": "record", "name": "Point", "fields": [{"name": "x", "type": "int"}]}},
        {"name": "b", "type": "Point"}, {"name": "c", "type": ["null", "geo.Point"]}]}
    value = {"a": {"x": 1}, "b": {"x": -2}, "c": {"x": 3}}
    plan = avro_plan.compiled(schema)
    assert avro_plan.encode(plan, value) == fastavro_bytes(schema, value)


ORDER = {"type": "record", "name": "Order", "fields": [
    {"name": "id", "type": "long"}, {"name": "note", "type": "string", "default": "none"},
    {"name": "amount", "type": "double"}]}


def serde_of(schema: dict) -> tuple[Any, Any]:
    """The encoder and the decoder an AvroSerde builds for `schema`."""
    serde = AvroSerde("http://127.0.0.1:9/apis/ccompat/v7", schema)  # converting touches no registry
    registered = RegisteredSchema(serde.schema.text, "AVRO")
    return serde._encoder(registered), serde._decoder(1, registered)


def test_the_serde_hands_what_the_codec_cannot_take_to_fastavro():
    encode, decode = serde_of(ORDER)
    # a missing field with a default, and an int for a double: fastavro's rules apply
    payload = encode({"id": 7, "amount": 2})
    assert payload == fastavro_bytes(ORDER, {"id": 7, "note": "none", "amount": 2.0})
    assert decode(b"\0\0\0\0\1" + payload) == {"id": 7, "note": "none", "amount": 2.0}


def test_the_serde_reports_what_neither_can_convert():
    encode, decode = serde_of(ORDER)
    with pytest.raises(SerializationError, match="value does not fit Avro schema Order"):
        encode({"id": "seven", "note": "x", "amount": 1.0})
    with pytest.raises(SerializationError, match="cannot read the Avro payload of schema id 1"):
        decode(b"\0\0\0\0\1" + encode({"id": 7, "note": "x", "amount": 1.0})[:-3])


def test_without_the_codec_the_serde_converts_with_fastavro(monkeypatch):
    # as where the package was installed without a C compiler: avro_plan.compiled() has no plan to give
    monkeypatch.setattr(avro_plan, "compiled", lambda schema: None)
    encode, decode = serde_of(ORDER)
    value = {"id": 7, "note": "x", "amount": 1.5}
    assert encode(value) == fastavro_bytes(ORDER, value)
    assert decode(b"\0\0\0\0\1" + encode(value)) == value
