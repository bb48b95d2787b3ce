"""Typed values: msgspec against orjson plus the dataclass constructor, per record, without a broker.

    python -m bench.models [--records 200000] [--rounds 5]

Decodes the benchmarks' ~200-byte JSON orders into a model and encodes them
back, in chunks of 256 records as a task converts them, with the garbage
collector paused as a task pauses it, each way several times, alternating, and
reports the median microseconds per record.  "orjson + dataclass" is the obvious alternative to msgspec:
orjson.loads then Order(**fields), which checks no field's type, and
orjson.dumps, which writes dataclasses natively.  msgspec decodes straight into
the dataclass or Struct and checks every field.  The ModelSerde rows are the
framework's own batch methods, what a source and a sink call.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import statistics
import time
from collections.abc import Callable

import msgspec
import orjson
import pydantic

from bench.workload import order
from streams.models import ModelSerde

CHUNK = 256


@dataclasses.dataclass
class OrderDC:
    id: int
    user: str
    amount: float
    currency: str
    country: str
    status: str
    ts: int
    items: list[int]
    note: str


class OrderStruct(msgspec.Struct):
    id: int
    user: str
    amount: float
    currency: str
    country: str
    status: str
    ts: int
    items: list[int]
    note: str


class OrderModel(pydantic.BaseModel):
    id: int
    user: str
    amount: float
    currency: str
    country: str
    status: str
    ts: int
    items: list[int]
    note: str


def cases(datas: list[bytes]) -> dict[str, Callable[[list], object]]:
    """Each case converts one chunk: bytes for the decoders, (dataclass, Struct, pydantic) triples for the encoders."""
    loads, dumps = orjson.loads, orjson.dumps
    decode_dc, decode_struct = msgspec.json.Decoder(OrderDC).decode, msgspec.json.Decoder(OrderStruct).decode
    encode = msgspec.json.Encoder().encode
    serdes = {m: ModelSerde(m) for m in (OrderDC, OrderStruct, OrderModel)}
    return {
        "decode: orjson + dataclass": lambda chunk: [OrderDC(**loads(d)) for d in chunk],
        "decode: msgspec dataclass": lambda chunk: [decode_dc(d) for d in chunk],
        "decode: msgspec Struct": lambda chunk: [decode_struct(d) for d in chunk],
        "decode: pydantic": lambda chunk: [OrderModel.model_validate_json(d) for d in chunk],
        "decode: ModelSerde(dataclass)": lambda chunk: serdes[OrderDC].deserialize_many(chunk),
        "decode: ModelSerde(Struct)": lambda chunk: serdes[OrderStruct].deserialize_many(chunk),
        "encode: orjson dataclass": lambda chunk: [dumps(o) for o, _, _ in chunk],
        "encode: msgspec dataclass": lambda chunk: [encode(o) for o, _, _ in chunk],
        "encode: msgspec Struct": lambda chunk: [encode(s) for _, s, _ in chunk],
        "encode: pydantic": lambda chunk: [m.model_dump_json() for _, _, m in chunk],
        "encode: ModelSerde(dataclass)": lambda chunk: serdes[OrderDC].serialize_many([o for o, _, _ in chunk]),
        "encode: ModelSerde(Struct)": lambda chunk: serdes[OrderStruct].serialize_many([s for _, s, _ in chunk]),
    }


def chunks(items: list, size: int = CHUNK) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    datas = [orjson.dumps(order(i, 100_000)) for i in range(args.records)]
    objects = [(msgspec.json.decode(d, type=OrderDC), msgspec.json.decode(d, type=OrderStruct),
                OrderModel.model_validate_json(d)) for d in datas]
    inputs = {"decode": chunks(datas), "encode": chunks(objects)}
    timings: dict[str, list[float]] = {}
    named = cases(datas)
    for round_ in range(args.rounds):
        for name, run in (named.items() if round_ % 2 == 0 else reversed(named.items())):
            gc.collect()
            gc.disable()
            started = time.perf_counter()
            for chunk in inputs[name.split(":")[0]]:
                run(chunk)
            elapsed = time.perf_counter() - started
            gc.enable()
            timings.setdefault(name, []).append(elapsed / args.records * 1e6)
    medians = {name: statistics.median(values) for name, values in timings.items()}
    print(f"{args.records:,} orders of ~200 bytes in chunks of {CHUNK}, median of {args.rounds} rounds, "
          "microseconds per record")
    for name, value in medians.items():
        print(f"  {name:32} {value:6.2f}")
    decode_ratio = medians["decode: orjson + dataclass"] / medians["decode: msgspec dataclass"]
    encode_ratio = medians["encode: orjson dataclass"] / medians["encode: msgspec dataclass"]
    print(f"msgspec speed-up over orjson + dataclass: decode {decode_ratio:.2f}x, encode {encode_ratio:.2f}x")


if __name__ == "__main__":
    main()
