"""A serde for Windowed keys, so windowed results can be written to topics and read back."""

from __future__ import annotations

import struct
from typing import Any

from streams.serdes import Serde, SerdeLike, resolve
from streams.windows.definitions import Windowed

_BOUNDS = struct.Struct(">qq")


class WindowedSerde:
    """The inner key's bytes followed by the window's start and end as big-endian signed 64-bit ints.

    Fixed-width bounds at the tail let any inner serde be used and keep every
    window of a key under the same key prefix.
    """

    name = "windowed"

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
