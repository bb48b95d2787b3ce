"""The benchmarks' data and user functions, shared by the framework side and the raw aiokafka side."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

CURRENCIES = ("EUR", "USD", "GBP", "JPY")
COUNTRIES = ("DE", "FR", "US", "GB", "JP", "NL", "IT", "ES")
NOTE = "lorem ipsum dolor sit amet, consectetur adipiscing"


def order(i: int, keys: int) -> dict[str, Any]:
    """The i-th order: about 200 bytes of JSON; every tenth one is cancelled."""
    return {
        "id": i,
        "user": f"user-{i % keys:07d}",
        "amount": (i * 7919) % 100_000 / 100,
        "currency": CURRENCIES[i % 4],
        "country": COUNTRIES[i % 8],
        "status": "cancelled" if i % 10 == 3 else "paid",
        "ts": 1_700_000_000_000 + i,
        "items": [i % 5 + 1, i % 3 + 1],
        "note": NOTE,
    }


def orders(count: int, keys: int) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) bytes of `count` orders keyed by user, `keys` distinct users."""
    for i in range(count):
        yield f"user-{i % keys:07d}".encode(), orjson.dumps(order(i, keys))


def kept(count: int) -> int:
    """How many of the first `count` orders pass `keep`."""
    return count - sum(1 for i in range(count) if i % 10 == 3)


def keep(key: Any, value: dict[str, Any]) -> bool:
    """The filter: drop cancelled orders."""
    return value["status"] != "cancelled"


def enrich(value: dict[str, Any]) -> dict[str, Any]:
    """The map: add the amount in cents and a size class."""
    return {**value, "cents": round(value["amount"] * 100), "large": value["amount"] >= 500}


ORDER_FIELDS = [
    {"name": "id", "type": "long"}, {"name": "user", "type": "string"}, {"name": "amount", "type": "double"},
    {"name": "currency", "type": "string"}, {"name": "country", "type": "string"},
    {"name": "status", "type": "string"}, {"name": "ts", "type": "long"},
    {"name": "items", "type": {"type": "array", "items": "long"}}, {"name": "note", "type": "string"},
]
ORDER_AVRO = {"type": "record", "name": "Order", "namespace": "bench", "fields": ORDER_FIELDS}
"""An order's Avro schema: 97 bytes of Avro for what is ~200 bytes of JSON."""
ENRICHED_AVRO = {"type": "record", "name": "EnrichedOrder", "namespace": "bench", "fields": [
    *ORDER_FIELDS, {"name": "cents", "type": "long"}, {"name": "large", "type": "boolean"}]}
"""What enrich() returns, in Avro."""
