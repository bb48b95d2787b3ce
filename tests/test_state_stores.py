"""InMemoryStore and RocksDBStore: the shared contract, checkpoints, persistence, corruption, wipe."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.state import sortedkeys
from streams.state.errors import StoreCorruptedError, StoreError
from streams.state.memory import InMemoryStore
from streams.state.rocksdb import RocksDBConfig, RocksDBStore, wipe_store_dir
from streams.state.store import CheckpointedStore, KeyValueStore, prefix_end

REPO = Path(__file__).resolve().parent.parent

StoreFactory = Callable[[], CheckpointedStore]


@pytest.fixture(params=["memory", "rocksdb"])
def make_store(request, tmp_path) -> Iterator[StoreFactory]:
    opened: list[CheckpointedStore] = []

    def make() -> CheckpointedStore:
        if request.param == "memory":
            store: CheckpointedStore = InMemoryStore("s")
        else:
            store = RocksDBStore("s", tmp_path / f"db{len(opened)}")
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def model_range(model: dict[bytes, bytes], start: bytes | None, end: bytes | None) -> list[tuple[bytes, bytes]]:
    return sorted((k, v) for k, v in model.items() if (start is None or k >= start) and (end is None or k < end))


def model_prefix(model: dict[bytes, bytes], prefix: bytes) -> list[tuple[bytes, bytes]]:
    return sorted((k, v) for k, v in model.items() if k.startswith(prefix))


# -- the contract, for both implementations ---------------------------------------


def test_implements_protocols(make_store):
    store = make_store()
    assert isinstance(store, KeyValueStore)
    assert isinstance(store, CheckpointedStore)
    assert store.name == "s"


def test_get_put_delete(make_store):
    store = make_store()
    assert store.get(b"k") is None
    store.put(b"k", b"v")
    store.put(b"", b"")
    assert store.get(b"k") == b"v"
    assert store.get(b"") == b""
    store.put(b"k", b"w")
    assert store.get(b"k") == b"w"
    store.delete(b"k")
    store.delete(b"never-there")
    assert store.get(b"k") is None
    assert list(store.items()) == [(b"", b"")]


def test_range_bounds_are_inclusive_exclusive_and_bytewise(make_store):
    store = make_store()
    keys = [b"a", b"a\x00", b"ab", b"b", b"\x00", b"\xff", b"\xff\xff", b"B"]
    store.put_all((k, k.upper()) for k in keys)
    ordered = sorted(keys)
    assert [k for k, _ in store.items()] == ordered
    assert [k for k, _ in store.range(b"a", b"b")] == [b"a", b"a\x00", b"ab"]
    assert [k for k, _ in store.range(None, b"a")] == [b"\x00", b"B"]
    assert [k for k, _ in store.range(b"b", None)] == [b"b", b"\xff", b"\xff\xff"]
    assert list(store.range(b"b", b"a")) == []
    assert list(store.range(b"a", b"a")) == []


def test_prefix_including_0xff_edges(make_store):
    store = make_store()
    keys = [b"a", b"a\xff", b"a\xff\x00", b"b", b"\xff", b"\xff\xff", b"\xff\x00"]
    store.put_all((k, b"v") for k in keys)
    assert [k for k, _ in store.prefix(b"a")] == [b"a", b"a\xff", b"a\xff\x00"]
    assert [k for k, _ in store.prefix(b"a\xff")] == [b"a\xff", b"a\xff\x00"]
    assert [k for k, _ in store.prefix(b"\xff")] == [b"\xff", b"\xff\x00", b"\xff\xff"]
    assert [k for k, _ in store.prefix(b"")] == sorted(keys)
    assert list(store.prefix(b"c")) == []


def test_prefix_end():
    assert prefix_end(b"ab") == b"ac"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"a\xff\xff") == b"b"
    assert prefix_end(b"\x00") == b"\x01"
    assert prefix_end(b"") is None
    assert prefix_end(b"\xff\xff") is None


def test_put_all_none_deletes(make_store):
    store = make_store()
    store.put_all([(b"a", b"1"), (b"b", b"2")])
    store.put_all([(b"a", None), (b"c", b"3"), (b"b", b"x"), (b"b", None), (b"zz", None)])
    assert list(store.items()) == [(b"c", b"3")]


def test_deleting_while_scanning(make_store):
    store = make_store()
    store.put_all((b"k%03d" % i, b"v") for i in range(200))
    for key, _ in store.range(b"k050", b"k150"):
        store.delete(key)
    assert [k for k, _ in store.items()] == [b"k%03d" % i for i in (*range(50), *range(150, 200))]


def test_approximate_count(make_store):
    store = make_store()
    assert store.approximate_count() == 0
    store.put_all((b"k%d" % i, b"v") for i in range(100))
    assert store.approximate_count() > 0
    if isinstance(store, InMemoryStore):
        assert store.approximate_count() == 100


def test_write_batch_and_checkpoint(make_store):
    store = make_store()
    assert store.checkpoint() is None
    store.write_batch([(b"a", b"1"), (b"b", b"2")], 10)
    assert store.checkpoint() == 10
    store.write_batch([(b"a", None)], None)  # None keeps the previous checkpoint
    assert store.checkpoint() == 10
    store.write_batch([], 12)
    assert store.checkpoint() == 12
    store.write_batch([], 0)
    assert store.checkpoint() == 0
    assert list(store.items()) == [(b"b", b"2")]


def test_checkpoint_never_collides_with_user_keys(make_store):
    store = make_store()
    for key in (b"changelog-checkpoint", b"__meta__", b"checkpoint"):
        store.put(key, b"user")
    store.write_batch([], 7)
    assert store.checkpoint() == 7
    assert all(v == b"user" for _, v in store.items())
    assert len(list(store.items())) == 3


def test_wipe_empties_data_and_checkpoint(make_store):
    store = make_store()
    store.write_batch([(b"a", b"1")], 3)
    store.wipe()
    assert list(store.items()) == []
    assert store.checkpoint() is None
    store.write_batch([(b"b", b"2")], 1)
    assert list(store.items()) == [(b"b", b"2")]
    assert store.checkpoint() == 1


def test_in_memory_large_bursts_between_scans():
    """Bursts bigger than the one-by-one threshold take the merge/filter path of the sorted index."""
    store = InMemoryStore("s")
    model: dict[bytes, bytes] = {}
    for round_ in range(4):
        for i in range(round_, 1000, 3):
            key = b"%04d" % ((i * 7919) % 1000)
            store.put(key, b"%d" % round_)
            model[key] = b"%d" % round_
        assert list(store.items()) == model_range(model, None, None)
        for i in range(round_, 1000, 5):
            key = b"%04d" % i
            store.delete(key)
            model.pop(key, None)
        assert list(store.range(b"0100", b"0900")) == model_range(model, b"0100", b"0900")
        store.put(b"0500", b"x")
        model[b"0500"] = b"x"
        store.delete(b"0001")
        model.pop(b"0001", None)
        assert list(store.items()) == model_range(model, None, None)


@pytest.mark.parametrize("fold_one_by_one", [0, 64])
def test_in_memory_delete_scan_readd_scan(fold_one_by_one):
    with mock.patch.object(sortedkeys, "_FOLD_ONE_BY_ONE", fold_one_by_one):
        store = InMemoryStore("s")
        store.put_all([(b"", b"0"), (b"a", b"1"), (b"b", b"2")])
        assert len(list(store.items())) == 3
        store.delete(b"")
        store.delete(b"b")
        assert list(store.items()) == [(b"a", b"1")]
        store.put(b"", b"again")
        store.put(b"b", b"again")
        store.delete(b"a")
        store.put(b"a", b"again")
        assert list(store.items()) == [(b"", b"again"), (b"a", b"again"), (b"b", b"again")]


# -- property test: both stores agree with a dict -----------------------------------

# Mostly a few colliding keys around the 0x00/0xff edges, sometimes anything.
keys = st.one_of(
    st.sampled_from([b"", b"a", b"a\x00", b"a\xff", b"ab", b"b", b"\xff", b"\xff\xff"]),
    st.lists(st.sampled_from([0x00, 0x61, 0xFF]), max_size=3).map(bytes),
    st.binary(max_size=3),
)
values = st.binary(max_size=4)
changes = st.lists(st.tuples(keys, st.one_of(st.none(), values)), max_size=6)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("put"), keys, values),
        st.tuples(st.just("delete"), keys),
        st.tuples(st.just("put_all"), changes),
        st.tuples(st.just("batch"), changes, st.one_of(st.none(), st.integers(0, 2**40))),
        st.tuples(st.just("get"), keys),
        st.tuples(st.just("range"), st.one_of(st.none(), keys), st.one_of(st.none(), keys)),
        st.tuples(st.just("prefix"), keys),
        st.tuples(st.just("reopen")),
    ),
    max_size=40,
)


def run_against_model(store: CheckpointedStore, ops, reopen: Callable[[CheckpointedStore], CheckpointedStore]):
    model: dict[bytes, bytes] = {}
    checkpoint = None
    for op in ops:
        kind = op[0]
        if kind == "put":
            store.put(op[1], op[2])
            model[op[1]] = op[2]
        elif kind == "delete":
            store.delete(op[1])
            model.pop(op[1], None)
        elif kind in ("put_all", "batch"):
            if kind == "put_all":
                store.put_all(op[1])
            else:
                store.write_batch(op[1], op[2])
                checkpoint = op[2] if op[2] is not None else checkpoint
            for key, value in op[1]:
                if value is None:
                    model.pop(key, None)
                else:
                    model[key] = value
        elif kind == "get":
            assert store.get(op[1]) == model.get(op[1])
        elif kind == "range":
            assert list(store.range(op[1], op[2])) == model_range(model, op[1], op[2])
        elif kind == "prefix":
            assert list(store.prefix(op[1])) == model_prefix(model, op[1])
        elif kind == "reopen":
            store = reopen(store)
        assert store.checkpoint() == checkpoint
    assert list(store.items()) == model_range(model, None, None)
    return store


@pytest.mark.parametrize("fold_one_by_one", [0, 2, 64])
@settings(max_examples=100, deadline=None)
@given(ops=operations)
def test_in_memory_store_matches_dict(fold_one_by_one, ops):
    """Also run with tiny fold thresholds so random bursts take the bulk merge and filter paths."""
    with mock.patch.object(sortedkeys, "_FOLD_ONE_BY_ONE", fold_one_by_one):
        run_against_model(InMemoryStore("s"), ops, reopen=lambda store: store)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations)
def test_rocksdb_store_matches_dict_across_reopen(ops):
    with tempfile.TemporaryDirectory() as directory:

        def reopen(store: CheckpointedStore) -> CheckpointedStore:
            store.close()
            return RocksDBStore("s", directory)

        run_against_model(RocksDBStore("s", directory), ops, reopen).close()


# -- RocksDB specifics ---------------------------------------------------------------


def test_scan_bounds_may_be_temporaries(tmp_path):
    """rocksdict's iterator does not own its bounds; the store must keep them alive for the scan."""
    store = RocksDBStore("s", tmp_path)
    try:
        store.put_all((b"k%04d" % i, b"v") for i in range(300))
        for i in range(0, 250, 5):
            scan = store.range(bytes(bytearray(b"k%04d" % i)), bytes(bytearray(b"k%04d" % (i + 50))))
            churn = [bytes(bytearray(b"k9999")) for _ in range(100)]
            assert [k for k, _ in scan] == [b"k%04d" % j for j in range(i, i + 50)], churn[0]
            assert len(list(store.prefix(bytes(bytearray(b"k%03d" % (i // 10)))))) == 10
    finally:
        store.close()


def test_data_and_checkpoint_survive_reopen(tmp_path):
    store = RocksDBStore("s", tmp_path)
    store.write_batch(((b"k%05d" % i, b"v%d" % i) for i in range(5000)), 5000)
    store.write_batch([(b"k00000", None)], 5001)
    store.close()
    store.close()  # idempotent
    reopened = RocksDBStore("s", tmp_path)
    try:
        assert reopened.checkpoint() == 5001
        assert reopened.get(b"k00000") is None
        assert reopened.get(b"k04999") == b"v4999"
        assert sum(1 for _ in reopened.items()) == 4999
    finally:
        reopened.close()


def test_without_wal_data_survives_clean_close(tmp_path):
    config = RocksDBConfig(disable_wal=True, write_buffer_size=1 << 20)
    store = RocksDBStore("s", tmp_path, config)
    store.write_batch(((b"%06d" % i, b"x" * 20) for i in range(20_000)), 20_000)
    store.put(b"single", b"put")
    store.close()
    reopened = RocksDBStore("s", tmp_path, config)
    try:
        assert reopened.checkpoint() == 20_000
        assert reopened.get(b"single") == b"put"
        assert sum(1 for _ in reopened.items()) == 20_001
    finally:
        reopened.close()


CRASHING_WRITER = """
import os, sys
from streams.state.rocksdb import RocksDBConfig, RocksDBStore
store = RocksDBStore("s", sys.argv[1], RocksDBConfig(disable_wal=sys.argv[2] == "nowal"))
store.write_batch([(b"first", b"1")], 1)
store.flush()
store.write_batch([(b"second", b"2"), (b"first", None)], 2)
os._exit(0)
"""


@pytest.mark.parametrize("wal", ["wal", "nowal"])
def test_crash_keeps_data_and_checkpoint_consistent(tmp_path, wal):
    """A process dying without closing loses (without WAL) or keeps (with WAL) data and checkpoint together."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", CRASHING_WRITER, str(tmp_path), wal], check=True, env=env, timeout=60)
    store = RocksDBStore("s", tmp_path)
    try:
        if wal == "wal":
            assert (store.checkpoint(), list(store.items())) == (2, [(b"second", b"2")])
        else:
            assert (store.checkpoint(), list(store.items())) == (1, [(b"first", b"1")])
    finally:
        store.close()


def make_flushed_db(path: Path) -> None:
    store = RocksDBStore("s", path)
    store.write_batch(((b"k%05d" % i, b"v" * 50) for i in range(2000)), 2000)
    store.flush()
    store.close()


def truncate(pattern: str) -> Callable[[Path], None]:
    def corrupt(path: Path) -> None:
        files = list(path.glob(pattern))
        assert files
        for file in files:
            file.write_bytes(b"")

    return corrupt


def scribble(pattern: str) -> Callable[[Path], None]:
    def corrupt(path: Path) -> None:
        files = list(path.glob(pattern))
        assert files
        for file in files:
            file.write_bytes(os.urandom(max(file.stat().st_size, 64)))

    return corrupt


def remove(pattern: str) -> Callable[[Path], None]:
    def corrupt(path: Path) -> None:
        files = list(path.glob(pattern))
        assert files
        for file in files:
            file.unlink()

    return corrupt


@pytest.mark.parametrize(
    "corrupt",
    [
        truncate("CURRENT"),
        scribble("CURRENT"),
        truncate("MANIFEST-*"),
        scribble("MANIFEST-*"),
        remove("MANIFEST-*"),
        scribble("*.sst"),
        truncate("*.sst"),
        remove("*.sst"),
    ],
    ids=[
        "truncated-CURRENT",
        "garbage-CURRENT",
        "truncated-MANIFEST",
        "garbage-MANIFEST",
        "missing-MANIFEST",
        "garbage-sst",
        "truncated-sst",
        "missing-sst",
    ],
)
def test_corruption_raises_store_corrupted_error(tmp_path, corrupt):
    path = tmp_path / "db"
    make_flushed_db(path)
    corrupt(path)
    with pytest.raises(StoreCorruptedError) as raised:
        RocksDBStore("counts", path)
    assert raised.value.path == path
    assert raised.value.name == "counts"
    assert "corrupted" in str(raised.value) and str(path) in str(raised.value)

    wipe_store_dir(raised.value.path)
    fresh = RocksDBStore("counts", path)
    try:
        assert list(fresh.items()) == [] and fresh.checkpoint() is None
    finally:
        fresh.close()


def test_open_or_rebuild(tmp_path):
    path = tmp_path / "db"
    make_flushed_db(path)
    store, rebuilt = RocksDBStore.open_or_rebuild("s", path)
    assert not rebuilt and store.checkpoint() == 2000
    store.close()
    truncate("CURRENT")(path)
    store, rebuilt = RocksDBStore.open_or_rebuild("s", path)
    try:
        assert rebuilt and store.checkpoint() is None and list(store.items()) == []
    finally:
        store.close()


def test_wipe_store_dir(tmp_path):
    path = tmp_path / "app" / "0_0" / "s"
    make_flushed_db(path)
    wipe_store_dir(path)
    assert not path.exists()
    wipe_store_dir(path)  # already gone: fine
    assert (tmp_path / "app" / "0_0").exists()


def test_opening_twice_is_an_error_but_not_corruption(tmp_path):
    store = RocksDBStore("s", tmp_path)
    try:
        with pytest.raises(StoreError) as raised:
            RocksDBStore("s", tmp_path)
        assert not isinstance(raised.value, StoreCorruptedError)
        assert "already open" in str(raised.value)
    finally:
        store.close()


def test_non_bytes_are_rejected_with_type_error(tmp_path):
    store = RocksDBStore("s", tmp_path)
    try:
        with pytest.raises(TypeError):
            store.put("text", b"v")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            store.put(b"k", "text")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            store.write_batch([(b"k", 1)], 3)  # type: ignore[list-item]
        with pytest.raises(TypeError):
            store.get(7)  # type: ignore[arg-type]
        assert store.checkpoint() is None
    finally:
        store.close()


def test_shared_block_cache(tmp_path):
    from rocksdict import Cache

    config = RocksDBConfig(block_cache=Cache(8 << 20))
    first = RocksDBStore("a", tmp_path / "a", config)
    second = RocksDBStore("b", tmp_path / "b", config)
    try:
        first.put(b"k", b"1")
        second.put(b"k", b"2")
        assert (first.get(b"k"), second.get(b"k")) == (b"1", b"2")
    finally:
        first.close()
        second.close()


def test_store_directories_are_0700_and_files_0600(tmp_path):
    """A store holds application data: nobody but its owner may read it (they were 0755 and 0644)."""
    state_dir = tmp_path / "state"
    path = state_dir / "app" / "0_0" / "counts"
    store = RocksDBStore("counts", path, RocksDBConfig(write_buffer_size=64 << 10, disable_wal=True))
    store.write_batch([(b"k%06d" % i, b"v" * 100) for i in range(5000)], 1)
    store.flush()
    store.write_batch([(b"k%06d" % i, b"w" * 100) for i in range(5000)], 2)
    store.close()
    assert os.umask(0o022) == 0o022, "the umask is restored"
    found = {path: stat.S_IMODE(path.stat().st_mode) for path in [state_dir, *state_dir.rglob("*")]}
    assert any(path.suffix == ".sst" for path in found)
    assert {str(p.relative_to(tmp_path)) for p, mode in found.items() if mode != (0o700 if p.is_dir() else 0o600)} \
        == set()
    reopened = RocksDBStore("counts", path)
    assert reopened.get(b"k000001") == b"w" * 100 and reopened.checkpoint() == 2
    reopened.close()
