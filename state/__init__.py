"""Local state stores: in-memory and RocksDB key-value stores, a commit-time write cache, and restore."""

from state.cache import CachedStore
from state.errors import StoreCorruptedError, StoreError
from state.memory import InMemoryStore
from state.restore import ChangelogRecord, RestoreProgress, StoreRestorer, needs_wipe
from state.rocksdb import META_COLUMN_FAMILY, RocksDBConfig, RocksDBStore, store_path, wipe_store_dir
from state.store import Change, CheckpointedStore, Entry, KeyValueStore, prefix_end

__all__ = [
    "META_COLUMN_FAMILY",
    "CachedStore",
    "Change",
    "ChangelogRecord",
    "CheckpointedStore",
    "Entry",
    "InMemoryStore",
    "KeyValueStore",
    "RestoreProgress",
    "RocksDBConfig",
    "RocksDBStore",
    "StoreCorruptedError",
    "StoreError",
    "StoreRestorer",
    "needs_wipe",
    "prefix_end",
    "store_path",
    "wipe_store_dir",
]
