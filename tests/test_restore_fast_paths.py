"""The restore shortcuts: direct batch writes, and no wipe of a store that is empty already."""

from __future__ import annotations

from streams.state.memory import InMemoryStore
from streams.state.restore import StoreRestorer
from streams.state.rocksdb import RocksDBStore


def test_wipe_leaves_an_empty_store_open_and_wipes_a_checkpoint_or_data(tmp_path):
    store = RocksDBStore("s", tmp_path / "s")
    db = store._db
    store.wipe()
    assert store._db is db, "an empty store without a checkpoint is not reopened"
    store.write_batch([], 7)
    store.wipe()
    assert store.checkpoint() is None and store._db is not db
    store.write_batch([(b"k", b"v")], None)
    store.wipe()
    assert list(store.items()) == [] and store.checkpoint() is None
    store.put(b"after", b"wipe")
    assert store.get(b"after") == b"wipe"
    store.close()


def test_write_applies_a_batch_with_its_checkpoint():
    store = InMemoryStore("s")
    restorer = StoreRestorer(store)
    restorer.start_offset(0, 10)
    restorer.write([(b"a", b"1"), (b"b", b"2"), (b"a", None)], 3, 3)
    assert list(store.items()) == [(b"b", b"2")]
    assert store.checkpoint() == 3 and restorer.position == 3 and restorer.restored == 3
