"""Java-compatible key partitioning, so other Kafka clients agree on where a key lives.

partition = (murmur2(key_bytes) & 0x7fffffff) % partitions, as in Kafka's default
partitioner.  The hash is in C (_murmur2.c) where the package was built with a C
compiler, and in Python otherwise; hashes of recently seen keys are memoized per
partitioner all the same, since real key sets repeat heavily.
"""

from __future__ import annotations

import struct

_M = 0x5BD1E995
_SEED = 0x9747B28C
_MASK = 0xFFFFFFFF


def murmur2_py(data: bytes) -> int:
    """32-bit murmur2 as Kafka's Java client computes it (a signed int)."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    words = length // 4
    if words:
        for k in struct.unpack_from(f"<{words}I", data):
            k = (k * _M) & _MASK
            k ^= k >> 24
            k = (k * _M) & _MASK
            h = ((h * _M) & _MASK) ^ k
    tail = length & 3
    base = words * 4
    if tail == 3:
        h ^= data[base + 2] << 16
    if tail >= 2:
        h ^= data[base + 1] << 8
    if tail >= 1:
        h ^= data[base]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - 0x100000000 if h & 0x80000000 else h


try:
    from streams._murmur2 import murmur2
except ImportError:  # built without a C compiler
    murmur2 = murmur2_py


def partition_for(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class KeyPartitioner:
    """Partitions keyed records by murmur2 and spreads keyless ones round-robin.

    `hashes` maps recently seen keys to their masked hash; callers placing many
    records may look keys up there themselves and call the partitioner only on
    a miss, which saves a call per record.
    """

    def __init__(self, cache_size: int = 100_000) -> None:
        self.hashes: dict[bytes, int] = {}
        self._cache_size = cache_size
        self._next = 0

    def __call__(self, key: bytes | None, partitions: int) -> int:
        if key is None:
            self._next += 1
            return self._next % partitions
        hashes = self.hashes
        h = hashes.get(key)
        if h is None:
            if len(hashes) >= self._cache_size:
                hashes.clear()
            h = hashes[key] = murmur2(key) & 0x7FFFFFFF
        return h % partitions
