"""A durable state store on RocksDB (through rocksdict), one database per task and store.

The changelog checkpoint lives inside the same database, in its own column
family, and is written in the same WriteBatch as the data it covers: after any
crash the store holds exactly the data its checkpoint claims, so restore resumes
at the checkpoint without guessing.
"""

from __future__ import annotations

import logging
import os
import shutil
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rocksdict import BlockBasedOptions, Cache, Options, Rdict, ReadOptions, WriteBatch, WriteOptions

from streams.private_files import private_umask, restrict_files
from streams.state.errors import StoreCorruptedError, StoreError
from streams.state.store import Change, Entry, prefix_end

log = logging.getLogger(__name__)

META_COLUMN_FAMILY = "__meta__"
"""Holds bookkeeping such as the checkpoint, apart from user keys."""

_CHECKPOINT_KEY = b"changelog-checkpoint"
_CHECKPOINT = struct.Struct(">q")


@dataclass(frozen=True)
class RocksDBConfig:
    """Tuning for one store's database.

    disable_wal: skip the write-ahead log.  Safe for stores with a changelog: data
    and checkpoint share a batch and column families are flushed atomically, so a
    crash loses the unflushed tail of both together and restore replays it from
    the changelog.  Keep the WAL for stores without a changelog, where that tail
    would be lost for good.  Writes are never fsynced either way: durability comes
    from the changelog, not the local disk.

    block_cache: a cache to share between stores (bounding total memory); when
    None each store gets its own of block_cache_size bytes.
    """

    write_buffer_size: int = 32 << 20
    max_write_buffer_number: int = 3
    block_cache_size: int = 32 << 20
    block_cache: Cache | None = field(default=None, compare=False)
    bloom_bits_per_key: int = 10
    background_jobs: int = 2
    disable_wal: bool = False


def wipe_store_dir(path: str | os.PathLike[str]) -> None:
    """Delete a store's directory so the next open starts empty; a missing directory is fine.

    The database must be closed: RocksDB keeps its files locked while open.
    """
    if Path(path).exists():
        shutil.rmtree(path)


class RocksDBStore:
    """A CheckpointedStore backed by a RocksDB database in raw (bytes-only) mode.

    Range scans read a consistent snapshot taken when the scan starts.  A scan that
    is still referenced keeps the database open after close(), so finish or drop
    iterators before closing or wiping.
    """

    def __init__(self, name: str, path: str | os.PathLike[str], config: RocksDBConfig | None = None) -> None:
        self.name = name
        self.path = Path(path)
        self.config = config or RocksDBConfig()
        self._write_options = WriteOptions()
        self._write_options.disable_wal = self.config.disable_wal
        self._closed = True
        self._open()

    @classmethod
    def open_or_rebuild(
        cls, name: str, path: str | os.PathLike[str], config: RocksDBConfig | None = None
    ) -> tuple[RocksDBStore, bool]:
        """Open the store, wiping it first if it is corrupted; the flag says whether it was wiped."""
        try:
            return cls(name, path, config), False
        except StoreCorruptedError as exc:
            log.warning("%s; wiping it to rebuild from the changelog", exc)
            wipe_store_dir(exc.path)
            return cls(name, path, config), True

    # -- opening and closing ------------------------------------------------

    def _open(self) -> None:
        # The store holds application data: its directories are 0700 and its files 0600.
        with private_umask():
            self.path.mkdir(parents=True, exist_ok=True)
            try:
                db = Rdict(
                    str(self.path),
                    self._options(),
                    column_families={META_COLUMN_FAMILY: Options(raw_mode=True)},
                )
            except Exception as exc:  # rocksdict raises plain Exception with RocksDB's status text
                raise self._error(exc) from exc
        restrict_files(self.path)  # files of an older database, written before this rule
        self._db = db
        self._meta = db.get_column_family(META_COLUMN_FAMILY)
        self._meta_handle = db.get_column_family_handle(META_COLUMN_FAMILY)
        self._closed = False

    def _options(self) -> Options:
        config = self.config
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        options.create_missing_column_families(True)
        # Without a WAL, column families flushed separately could persist a newer
        # checkpoint than the data; atomic flush rules that out.
        options.set_atomic_flush(True)
        options.set_paranoid_checks(True)
        options.set_write_buffer_size(config.write_buffer_size)
        options.set_max_write_buffer_number(config.max_write_buffer_number)
        options.set_max_background_jobs(config.background_jobs)
        table = BlockBasedOptions()
        table.set_bloom_filter(config.bloom_bits_per_key, False)
        table.set_block_cache(config.block_cache or Cache(config.block_cache_size))
        options.set_block_based_table_factory(table)
        return options

    def _error(self, exc: Exception) -> StoreError:
        detail = str(exc)
        if "Corruption" in detail or "No such file or directory" in detail:
            return StoreCorruptedError(self.name, self.path, detail)
        if "lock" in detail.lower():
            return StoreError(f"state store {self.name!r} at {self.path} is already open: {detail}")
        return StoreError(f"state store {self.name!r} at {self.path}: {detail}")

    def flush(self) -> None:
        """Write memtables to disk, data before checkpoint so a crash in between errs on the safe side."""
        with private_umask():
            self._db.flush()
            self._meta.flush()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.config.disable_wal:
            self.flush()
        self._meta_handle = None
        failures = []
        with private_umask():
            for handle in (self._meta, self._db):
                try:
                    handle.close()
                except Exception as exc:  # a database with a write error (a full disk) fails to flush on close
                    failures.append(str(exc))
        restrict_files(self.path)  # what background flushes and compactions wrote meanwhile
        if failures:
            log.warning("state store %r at %s did not close cleanly (%s); restore replays what it lost from the "
                        "changelog", self.name, self.path, "; ".join(failures))

    def wipe(self) -> None:
        """Delete the database and reopen it empty, with no checkpoint.

        A store that is empty already (a new one, before its first restore) is
        left as it is: closing and reopening a database costs milliseconds per store.
        """
        if self.checkpoint() is None and next(self.items(), None) is None:
            return
        self.close()
        wipe_store_dir(self.path)
        self._open()

    # -- reads --------------------------------------------------------------

    def get(self, key: bytes) -> bytes | None:
        try:
            return self._db.get(key)
        except KeyError:
            raise TypeError(f"state store {self.name!r}: keys must be bytes, got {type(key).__name__}") from None
        except Exception as exc:
            if "Corruption" in str(exc):
                raise self._error(exc) from exc
            raise

    def range(self, start: bytes | None = None, end: bytes | None = None) -> Iterator[Entry]:
        if start is not None and end is not None and start >= end:
            return iter(())
        read_options = ReadOptions()
        if end is not None:
            read_options.set_iterate_upper_bound(end)
        return self._scan(self._db.items(from_key=start, read_opt=read_options), (start, end, read_options))

    def _scan(self, entries: Iterator[Entry], keep_alive: object) -> Iterator[Entry]:
        # rocksdict's iterator points into the bound's bytes buffer without owning
        # it: the bounds must outlive the iteration, so this frame holds them.
        try:
            yield from entries
        except Exception as exc:
            if "Corruption" in str(exc):
                raise self._error(exc) from exc
            raise

    def prefix(self, prefix: bytes) -> Iterator[Entry]:
        return self.range(prefix, prefix_end(prefix))

    def items(self) -> Iterator[Entry]:
        return self.range(None, None)

    def approximate_count(self) -> int:
        """RocksDB's estimate: cheap, but counts overwritten and deleted keys until compaction."""
        return self._db.property_int_value("rocksdb.estimate-num-keys") or 0

    def size_bytes(self) -> dict[str, int]:
        """On-disk and in-memory size, from RocksDB's own properties (cheap: no scan)."""
        db = self._db
        return {"sst": db.property_int_value("rocksdb.total-sst-files-size") or 0,
                "memtable": db.property_int_value("rocksdb.cur-size-all-mem-tables") or 0}

    def checkpoint(self) -> int | None:
        raw = self._meta.get(_CHECKPOINT_KEY)
        return None if raw is None else _CHECKPOINT.unpack(raw)[0]

    # -- writes -------------------------------------------------------------

    def put(self, key: bytes, value: bytes) -> None:
        try:
            self._db.put(key, value, self._write_options)
        except (KeyError, ValueError):
            raise self._type_error(key, value) from None

    def delete(self, key: bytes) -> None:
        try:
            self._db.delete(key, self._write_options)
        except KeyError:
            raise self._type_error(key, b"") from None

    def put_all(self, items: Iterable[Change]) -> None:
        self.write_batch(items, None)

    def write_batch(self, items: Iterable[Change], checkpoint: int | None = None) -> None:
        """Apply writes (None deletes) and the checkpoint in one atomic RocksDB batch.

        A None checkpoint leaves the stored one as it was.
        """
        batch = WriteBatch(raw_mode=True)
        put = batch.put
        delete = batch.delete
        try:
            for key, value in items:
                if value is None:
                    delete(key)
                else:
                    put(key, value)
        except (KeyError, ValueError):
            raise self._type_error(key, value) from None
        if checkpoint is not None:
            batch.put(_CHECKPOINT_KEY, _CHECKPOINT.pack(checkpoint), self._meta_handle)
        if batch.is_empty():
            return
        try:
            self._db.write(batch, self._write_options)
        except Exception as exc:
            raise self._error(exc) from exc

    def _type_error(self, key: object, value: object) -> TypeError:
        # rocksdict reports a non-bytes key as KeyError and a non-bytes value as ValueError.
        return TypeError(
            f"state store {self.name!r}: keys and values must be bytes, "
            f"got {type(key).__name__} and {type(value).__name__}"
        )

    def __repr__(self) -> str:
        return f"RocksDBStore({self.name!r}, {str(self.path)!r})"
