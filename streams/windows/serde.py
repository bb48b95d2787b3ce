"""Serdes for Windowed keys, so windowed results can be written to topics and read back.

Two layouts, both partitioned by the inner key alone (the inner serde's bytes,
hashed like any key), so every window of a key lands in the partition that the
key itself would:

- WindowedJsonSerde, the default: {"key": <key as JSON>, "start": ms, "end": ms},
  readable by any consumer.
- WindowedSerde: the inner key's bytes followed by start and end as big-endian
  signed 64-bit ints, for readers that want the inner serde's bytes untouched.
"""

from __future__ import annotations

import struct
from typing import Any

import orjson

from streams.partitioner import partition_for
from streams.serdes import Serde, SerdeLike, resolve
from streams.windows.definitions import Windowed

_BOUNDS = struct.Struct(">qq")


class WindowedJsonSerde:
    """{"key", "start", "end"} as a JSON object; the key must be JSON (str, number, list, dict).

    A key JSON cannot hold (bytes, other objects) is a serialization error: write
    such results with WindowedSerde(inner) instead.  Read back, a tuple key is a list.
    """

    name = "windowed-json"

    def __init__(self, inner: SerdeLike = "str") -> None:
        self.inner: Serde = resolve(inner, "str")  # only for partitioning, like the key alone

    def serialize(self, obj: Any) -> bytes | None:
        if obj is None:
            return None
        if not isinstance(obj, Windowed):
            raise TypeError(f"windowed serde expects a Windowed key, got {type(obj).__name__}")
        try:
            return orjson.dumps({"key": obj.key, "start": obj.start, "end": obj.end})
        except TypeError as exc:
            raise TypeError(f"a windowed key of type {type(obj.key).__name__} cannot be written as JSON ({exc}); "
                            "use key_serde=WindowedSerde(inner serde)") from None

    def deserialize(self, data: bytes | None) -> Any:
        if data is None:
            return None
        fields = orjson.loads(data)
        return Windowed(fields["key"], fields["start"], fields["end"])

    def partition(self, data: bytes | None, partitions: int) -> int:
        """The partition of the inner key, as the inner serde writes it."""
        key = None if data is None else self.inner.serialize(orjson.loads(data)["key"])
        return 0 if key is None else partition_for(key, partitions)


class WindowedSerde:
    """The inner key's bytes followed by the window's start and end as big-endian signed 64-bit ints.

    Fixed-width bounds at the tail let any inner serde be used and keep every
    window of a key under the same key prefix.
    """

    name = "windowed-binary"

    def __init__(self, inner: SerdeLike = "str") -> None:
        self.inner: Serde = resolve(inner, "str")

    def serialize(self, obj: Any) -> bytes | None:
        if obj is None:
            return None
        if not isinstance(obj, Windowed):
            raise TypeError(f"windowed serde expects a Windowed key, got {type(obj).__name__}")
        key = self.inner.serialize(obj.key)
        return (key or b"") + _BOUNDS.pack(obj.start, obj.end)

    def deserialize(self, data: bytes | None) -> Any:
        if data is None:
            return None
        if len(data) < _BOUNDS.size:
            raise ValueError(f"a windowed key needs at least {_BOUNDS.size} bytes, got {len(data)}")
        start, end = _BOUNDS.unpack_from(data, len(data) - _BOUNDS.size)
        return Windowed(self.inner.deserialize(data[: -_BOUNDS.size]), start, end)

    def partition(self, data: bytes | None, partitions: int) -> int:
        """The partition of the inner key: the bytes before the bounds."""
        return 0 if data is None else partition_for(data[: -_BOUNDS.size], partitions)
