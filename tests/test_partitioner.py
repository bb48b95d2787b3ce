"""Key partitioning agrees with Kafka's Java client, in C and in Python alike."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams import partitioner

# Kafka's own test vectors for Utils.murmur2
JAVA = [(b"21", -973932308), (b"foobar", -790332482), (b"a-little-bit-long-string", -985981536),
        (b"a-little-bit-longer-string", -1486304829),
        (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971), (b"abc", 479470107)]


def test_the_c_hash_is_built():
    # the package builds it wherever a C compiler is, as on every machine the suite runs on
    assert partitioner.murmur2 is not partitioner.murmur2_py


@pytest.mark.parametrize("hash_", [partitioner.murmur2, partitioner.murmur2_py], ids=["c", "python"])
@pytest.mark.parametrize(("key", "expected"), JAVA)
def test_murmur2_gives_the_java_clients_hash(hash_, key, expected):
    assert hash_(key) == expected


@given(st.binary(max_size=64))
def test_the_c_and_python_hashes_agree(key):
    assert partitioner.murmur2(key) == partitioner.murmur2_py(key)


def test_keys_are_placed_as_kafka_places_them_and_keyless_records_round_robin():
    place = partitioner.KeyPartitioner(cache_size=2)
    assert [place(key, 12) for key, _ in JAVA] == [(h & 0x7FFFFFFF) % 12 for _, h in JAVA]
    assert [place(None, 3) for _ in range(4)] == [1, 2, 0, 1]
