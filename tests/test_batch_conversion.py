"""Whole-batch conversion in sources, sinks and serdes: same results as one record at a time.

Sources and sinks convert a batch with a serde's deserialize_many/serialize_many
and, when that fails, convert it again record by record so that only the bad
record goes to the error policy.  Tasks feed processors 256 records at a time.
"""

from __future__ import annotations

import math
import time
from typing import Any

import pytest

from streams import App
from streams.compiler.compile import plan_tasks
from streams.serdes import resolve
from streams.task.errors_policy import ErrorPolicy
from streams.task.ordering import CHUNK_RECORDS
from streams.task.task import Task
from streams.transport.base import RawRecord, TopicPartition

NOW = int(time.time() * 1000)
IN = TopicPartition("in", 0)


def one_task(app: App) -> Task:
    plan = plan_tasks(app.topology(), {"in": 1})
    counts = {**plan.partition_counts, "out": 1, app.config.dlq_topic: 1}
    return Task(plan.tasks["0_0"], app.app_id, counts, ErrorPolicy(app.config.on_error, app.config.dlq_topic))


def raw(offset: int, key: bytes | None, value: bytes | None) -> RawRecord:
    return RawRecord("in", 0, offset, NOW + offset, key, value, ())


@pytest.mark.parametrize("name,objs", [
    ("bytes", [b"a", None, b"", bytearray(b"b")]),
    ("str", ["a", None, "", "\u00e9t\u00e9"]),
    ("json", [{"a": 1, 2: "b"}, None, [1, 2], "s", 3.5, 0]),
    ("int", [0, -1, 2**62, None]),
    ("float", [1.5, -0.0, None, math.inf]),
])
def test_batch_methods_equal_the_single_ones(name: str, objs: list[Any]):
    serde = resolve(name, "str")
    assert serde.serialize_many(objs) == [serde.serialize(o) for o in objs]
    datas = [serde.serialize(o) for o in objs]
    assert serde.deserialize_many(datas) == [serde.deserialize(d) for d in datas]


def test_an_unreadable_record_in_a_batch_goes_alone_to_the_dlq():
    app = App("unit", brokers="unused:9092")
    app.stream("in").map_values(lambda v: v["n"]).to("out")
    task = one_task(app)
    task.process({IN: [raw(0, b"a", b'{"n": 1}'), raw(1, b"b", b"{not json"), raw(2, b"c", b'{"n": 3}')]})
    output = task.take_output()
    assert [(r.topic, r.key, r.value) for r in output if r.topic == "out"] == [("out", b"a", b"1"), ("out", b"c", b"3")]
    [dead] = [r for r in output if r.topic == "unit-dlq"]
    assert dead.key == b"b" and dict(dead.headers)["streams.error.offset"] == b"1"
    assert task.offsets[IN] == 3


def test_an_unwritable_value_in_a_batch_goes_alone_to_the_dlq():
    app = App("unit", brokers="unused:9092")
    app.stream("in").map_values(lambda v: {1, 2} if v == 2 else v).to("out")
    task = one_task(app)
    task.process({IN: [raw(i, b"k%d" % i, b"%d" % i) for i in range(4)]})
    output = task.take_output()
    assert [r.value for r in output if r.topic == "out"] == [b"0", b"1", b"3"]
    [dead] = [r for r in output if r.topic == "unit-dlq"]
    assert dead.key == b"k2" and dict(dead.headers)["streams.error.operator"].startswith(b"sink to out")


class Upper:
    """A serde of its own, without batch methods: converted one record at a time."""

    def serialize(self, obj: Any) -> bytes | None:
        return None if obj is None else obj.upper().encode()

    def deserialize(self, data: bytes | None) -> Any:
        return None if data is None else data.decode().lower()


def test_serdes_without_batch_methods_still_work():
    app = App("unit", brokers="unused:9092")
    app.stream("in", key_serde=Upper(), value_serde=Upper()).map_values(lambda v: v and v + "!").to("out")
    task = one_task(app)
    task.process({IN: [raw(0, b"KEY", b"VALUE"), raw(1, b"K2", None)]})
    assert [(r.key, r.value) for r in task.take_output()] == [(b"KEY", b"VALUE!"), (b"K2", None)]


def test_a_batch_longer_than_a_chunk_keeps_order_offsets_and_stream_time():
    seen: list[int] = []
    app = App("unit", brokers="unused:9092")
    app.stream("in").peek(lambda k, v: seen.append(v)).to("out")
    task = one_task(app)
    count = CHUNK_RECORDS * 2 + 7
    task.process({IN: [raw(i, b"k", b"%d" % i) for i in range(count)]})
    assert seen == list(range(count))
    assert [r.value for r in task.take_output()] == [b"%d" % i for i in range(count)]
    assert task.offsets[IN] == count and task.stream_time == NOW + count - 1
