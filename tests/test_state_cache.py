"""CachedStore: reads through pending writes, one batch per commit, discard on abort."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.state.cache import CachedStore
from streams.state.memory import InMemoryStore
from streams.state.rocksdb import RocksDBStore
from streams.state.store import Change, CheckpointedStore, KeyValueStore


class RecordingStore(InMemoryStore):
    """An InMemoryStore that records each write_batch call, and can be told to fail them."""

    def __init__(self, name: str = "s") -> None:
        super().__init__(name)
        self.batches: list[tuple[list[Change], int | None]] = []
        self.fail = False

    def write_batch(self, items: Iterable[Change], checkpoint: int | None = None) -> None:
        if self.fail:
            raise OSError("disk full")
        items = list(items)
        self.batches.append((items, checkpoint))
        super().write_batch(items, checkpoint)


@pytest.fixture
def backing() -> RecordingStore:
    store = RecordingStore()
    store.write_batch([(b"a", b"1"), (b"b", b"2"), (b"c", b"3")], 100)
    store.batches.clear()
    return store


def test_is_a_key_value_store(backing):
    cached = CachedStore(backing)
    assert isinstance(cached, KeyValueStore)
    assert cached.name == "s"


def test_reads_see_pending_writes_first(backing):
    cached = CachedStore(backing)
    cached.put(b"a", b"new")
    cached.delete(b"b")
    cached.put(b"d", b"4")
    assert cached.get(b"a") == b"new"
    assert cached.get(b"b") is None
    assert cached.get(b"c") == b"3"
    assert cached.get(b"d") == b"4"
    assert cached.get(b"zz") is None
    assert backing.get(b"a") == b"1" and backing.get(b"b") == b"2"
    assert backing.batches == []


def test_scans_merge_pending_over_store(backing):
    cached = CachedStore(backing)
    cached.put_all([(b"a", b"new"), (b"b", None), (b"bb", b"5"), (b"0", b"0"), (b"z", None)])
    assert list(cached.items()) == [(b"0", b"0"), (b"a", b"new"), (b"bb", b"5"), (b"c", b"3")]
    assert list(cached.range(b"a", b"c")) == [(b"a", b"new"), (b"bb", b"5")]
    assert list(cached.range(b"b", None)) == [(b"bb", b"5"), (b"c", b"3")]
    assert list(cached.prefix(b"b")) == [(b"bb", b"5")]
    assert list(cached.range(b"c", b"a")) == []


def test_dirty_keeps_last_write_per_key(backing):
    cached = CachedStore(backing)
    cached.put(b"a", b"x")
    cached.put(b"a", b"y")
    cached.put(b"n", b"1")
    cached.delete(b"n")
    cached.delete(b"b")
    cached.put(b"b", b"back")
    assert sorted(cached.dirty()) == [(b"a", b"y"), (b"b", b"back"), (b"n", None)]
    assert cached.dirty_count() == 3


def test_commit_writes_one_batch_with_checkpoint(backing):
    cached = CachedStore(backing)
    for i in range(100):
        cached.put(b"a", b"%d" % i)
    cached.delete(b"b")
    cached.commit(150)
    assert len(backing.batches) == 1
    items, checkpoint = backing.batches[0]
    assert sorted(items) == [(b"a", b"99"), (b"b", None)]
    assert checkpoint == 150
    assert cached.dirty() == [] and cached.checkpoint() == 150
    assert list(cached.items()) == [(b"a", b"99"), (b"c", b"3")]
    assert list(backing.items()) == [(b"a", b"99"), (b"c", b"3")]


def test_commit_without_changes_still_moves_checkpoint(backing):
    cached = CachedStore(backing)
    cached.commit(200)
    assert backing.checkpoint() == 200
    cached.commit(None)
    assert backing.checkpoint() == 200


def test_failed_commit_keeps_pending_changes_for_retry(backing):
    cached = CachedStore(backing)
    cached.put(b"a", b"new")
    backing.fail = True
    with pytest.raises(OSError):
        cached.commit(101)
    assert cached.dirty() == [(b"a", b"new")]
    assert cached.get(b"a") == b"new" and backing.checkpoint() == 100
    backing.fail = False
    cached.commit(101)
    assert backing.get(b"a") == b"new" and backing.checkpoint() == 101


def test_discard_drops_pending_changes(backing):
    cached = CachedStore(backing)
    cached.put(b"a", b"new")
    cached.delete(b"c")
    cached.discard()
    assert cached.dirty() == []
    assert list(cached.items()) == [(b"a", b"1"), (b"b", b"2"), (b"c", b"3")]
    cached.commit(101)
    assert backing.batches == [([], 101)]


def test_local_writes_are_committed_but_not_logged(backing):
    cached = CachedStore(backing)
    cached.put(b"a", b"logged")
    cached.put_local(b"i", b"derived")
    cached.put_local(b"b", None)
    cached.put_local(b"c", b"local")
    cached.put(b"c", b"logged again")  # a later logged write of a key is logged
    assert sorted(cached.logged()) == [(b"a", b"logged"), (b"c", b"logged again")]
    assert cached.get(b"i") == b"derived" and cached.get(b"b") is None
    cached.commit(101)
    assert backing.get(b"i") == b"derived" and backing.get(b"b") is None and backing.checkpoint() == 101
    cached.put(b"i", b"logged now")  # the local mark ends with the commit
    assert cached.logged() == [(b"i", b"logged now")]
    cached.put_local(b"a", b"x")
    cached.discard()
    cached.put(b"a", b"y")
    assert cached.logged() == [(b"a", b"y")]


def test_flush_and_close_never_write_pending_changes(backing):
    cached = CachedStore(backing)
    cached.put(b"a", b"new")
    cached.flush()
    assert backing.batches == [] and backing.get(b"a") == b"1"
    cached.close()
    assert backing.batches == [] and cached.dirty() == []


def test_approximate_count_accounts_for_pending(backing):
    cached = CachedStore(backing)
    assert cached.approximate_count() == 3
    cached.put(b"d", b"4")
    cached.delete(b"a")
    cached.delete(b"b")
    assert cached.approximate_count() == 2


def test_scan_started_before_a_commit_is_unaffected(backing):
    cached = CachedStore(backing)
    cached.put(b"b", b"new")
    scan = cached.items()
    cached.commit(101)
    cached.put(b"zz", b"later")
    assert list(scan) == [(b"a", b"1"), (b"b", b"new"), (b"c", b"3")]


def test_over_rocksdb_commit_survives_reopen(tmp_path):
    cached = CachedStore(RocksDBStore("s", tmp_path))
    cached.put(b"k", b"v")
    cached.commit(7)
    cached.put(b"uncommitted", b"x")
    cached.close()
    reopened = RocksDBStore("s", tmp_path)
    try:
        assert list(reopened.items()) == [(b"k", b"v")]
        assert reopened.checkpoint() == 7
    finally:
        reopened.close()


# -- property test: a cache with random commits and discards behaves like a dict ----

# Mostly a few colliding keys around the 0x00/0xff edges, sometimes anything.
keys = st.one_of(
    st.sampled_from([b"", b"a", b"a\x00", b"a\xff", b"ab", b"b", b"\xff", b"\xff\xff"]),
    st.lists(st.sampled_from([0x00, 0x61, 0xFF]), max_size=3).map(bytes),
    st.binary(max_size=3),
)
values = st.binary(max_size=3)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("put"), keys, values),
        st.tuples(st.just("delete"), keys),
        st.tuples(st.just("put_all"), st.lists(st.tuples(keys, st.one_of(st.none(), values)), max_size=5)),
        st.tuples(st.just("get"), keys),
        st.tuples(st.just("range"), st.one_of(st.none(), keys), st.one_of(st.none(), keys)),
        st.tuples(st.just("prefix"), keys),
        st.tuples(st.just("commit"), st.one_of(st.none(), st.integers(0, 10**9))),
        st.tuples(st.just("discard")),
    ),
    max_size=40,
)


def model_range(model: dict[bytes, bytes], start: bytes | None, end: bytes | None) -> list[tuple[bytes, bytes]]:
    return sorted((k, v) for k, v in model.items() if (start is None or k >= start) and (end is None or k < end))


def run_against_model(store: CheckpointedStore, ops) -> None:
    cached = CachedStore(store)
    committed: dict[bytes, bytes] = {}
    pending: dict[bytes, bytes | None] = {}
    checkpoint = None

    def view() -> dict[bytes, bytes]:
        merged: dict[bytes, bytes | None] = {**committed, **pending}
        return {k: v for k, v in merged.items() if v is not None}

    for op in ops:
        kind = op[0]
        if kind == "put":
            cached.put(op[1], op[2])
            pending[op[1]] = op[2]
        elif kind == "delete":
            cached.delete(op[1])
            pending[op[1]] = None
        elif kind == "put_all":
            cached.put_all(op[1])
            pending.update(op[1])
        elif kind == "get":
            assert cached.get(op[1]) == view().get(op[1])
        elif kind == "range":
            assert list(cached.range(op[1], op[2])) == model_range(view(), op[1], op[2])
        elif kind == "prefix":
            expected = sorted((k, v) for k, v in view().items() if k.startswith(op[1]))
            assert list(cached.prefix(op[1])) == expected
        elif kind == "commit":
            assert sorted(cached.dirty()) == sorted(pending.items())
            cached.commit(op[1])
            committed = view()
            pending = {}
            checkpoint = op[1] if op[1] is not None else checkpoint
            assert list(store.items()) == model_range(committed, None, None)
            assert store.checkpoint() == checkpoint
        elif kind == "discard":
            cached.discard()
            pending = {}
    assert list(cached.items()) == model_range(view(), None, None)
    assert list(store.items()) == model_range(committed, None, None)


@settings(max_examples=150, deadline=None)
@given(operations)
def test_cache_over_memory_matches_dict(ops):
    run_against_model(InMemoryStore("s"), ops)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations)
def test_cache_over_rocksdb_matches_dict(ops):
    with tempfile.TemporaryDirectory() as directory:
        store = RocksDBStore("s", directory)
        try:
            run_against_model(store, ops)
        finally:
            store.close()
