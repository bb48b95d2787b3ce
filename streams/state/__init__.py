"""Local state: the store protocol that processors see, the query view, and RocksDB tuning.

Stores are RocksDB (or in-memory) key-value stores behind compacted changelog
topics; the runtime opens, restores and commits them.  What a user touches is
the KeyValueStore protocol (from ProcessorContext.get_store), StoreView and
VersionedStoreView (from app.store() or TestDriver.store()) and RocksDBConfig.
"""

from streams.state.errors import StoreCorruptedError, StoreError
from streams.state.query import StoreView
from streams.state.rocksdb import RocksDBConfig
from streams.state.store import KeyValueStore
from streams.state.versioned import VersionedStoreView

__all__ = ["KeyValueStore", "RocksDBConfig", "StoreCorruptedError", "StoreError", "StoreView", "VersionedStoreView"]
