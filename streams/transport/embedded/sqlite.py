"""Durable storage for local:// brokers: one SQLite database under the broker's directory.

Every change the broker makes is one SQLite transaction (write-ahead log,
synchronous=NORMAL: it survives a crash of the process, which is what a local
development broker needs).  A lock file keeps a second process from opening
the same directory, because the embedded broker serves one process only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TextIO

from streams.private_files import private_umask
from streams.transport.base import TopicPartition
from streams.transport.embedded.errors import BrokerInUseError
from streams.transport.embedded.records import MARKER, PENDING, StoredRecord, decode_headers, encode_headers
from streams.transport.embedded.storage import Snapshot
from streams.transport.embedded.topics import PartitionState, TopicState

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

DATABASE, LOCK = "streams.db", "broker.lock"
SCHEMA = """
CREATE TABLE IF NOT EXISTS topics (name TEXT PRIMARY KEY, partitions INTEGER NOT NULL, config TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS partitions (
    topic TEXT, part INTEGER, log_start INTEGER, next_offset INTEGER, segment_base INTEGER,
    segment_started_ms INTEGER, segment_bytes INTEGER, clean_offset INTEGER,
    PRIMARY KEY (topic, part)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records (
    topic TEXT, part INTEGER, pos INTEGER, ts INTEGER, key_bytes BLOB, value_bytes BLOB, headers BLOB,
    kind INTEGER, horizon INTEGER,
    PRIMARY KEY (topic, part, pos)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS offsets (grp TEXT, topic TEXT, part INTEGER, pos INTEGER,
    PRIMARY KEY (grp, topic, part)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS producers (transactional_id TEXT PRIMARY KEY, epoch INTEGER NOT NULL);
"""
RECORD_COLUMNS = "pos, ts, key_bytes, value_bytes, headers, kind, horizon"


class SqliteStorage:
    """Logs, topics, offsets and producer epochs in one SQLite file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        # The broker holds every record: its directory is 0700 and its files 0600 (SQLite gives the
        # -wal and -shm files the database file's mode).
        with private_umask():
            directory.mkdir(parents=True, exist_ok=True)
            ran_before = (directory / LOCK).exists()
            self._lock_file = _lock(directory / LOCK)
            if not (directory / DATABASE).exists():
                _log_empty_start(directory, ran_before)
            self._db = sqlite3.connect(directory / DATABASE, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
        self._depth = 0

    def load(self) -> Snapshot:
        snapshot = Snapshot()
        for name, partitions, config in self._db.execute("SELECT name, partitions, config FROM topics"):
            states = [PartitionState() for _ in range(partitions)]
            snapshot.topics[name] = TopicState(name, json.loads(config), states)
        for topic, part, *fields in self._db.execute(
            "SELECT topic, part, log_start, next_offset, segment_base, segment_started_ms, segment_bytes,"
            " clean_offset FROM partitions"
        ):
            if topic in snapshot.topics and part < len(snapshot.topics[topic].partitions):
                snapshot.topics[topic].partitions[part] = PartitionState(*fields)
        for group, topic, part, offset in self._db.execute("SELECT grp, topic, part, pos FROM offsets"):
            snapshot.offsets.setdefault(group, {})[TopicPartition(topic, part)] = offset
        snapshot.epochs.update(self._db.execute("SELECT transactional_id, epoch FROM producers"))
        for topic, part, offset in self._db.execute(
            "SELECT topic, part, pos FROM records WHERE kind = ? ORDER BY topic, part, pos", (PENDING,)
        ):
            snapshot.pending.setdefault(TopicPartition(topic, part), []).append(offset)
        return snapshot

    @contextlib.contextmanager
    def atomic(self) -> Iterator[None]:
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            self._db.execute("ROLLBACK")
            raise
        self._depth = 0
        self._db.execute("COMMIT")

    def save_topic(self, topic: TopicState) -> None:
        with self.atomic():
            self._db.execute("INSERT OR REPLACE INTO topics VALUES (?, ?, ?)",
                             (topic.name, len(topic.partitions), json.dumps(topic.config, sort_keys=True)))
            for partition, state in enumerate(topic.partitions):
                self.save_partition(TopicPartition(topic.name, partition), state)

    def drop_topic(self, name: str) -> None:
        with self.atomic():
            for table, column in (("topics", "name"), ("partitions", "topic"), ("records", "topic"),
                                  ("offsets", "topic")):
                self._db.execute(f"DELETE FROM {table} WHERE {column} = ?", (name,))

    def save_partition(self, tp: TopicPartition, state: PartitionState) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO partitions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (tp.topic, tp.partition, state.log_start, state.next_offset, state.segment_base,
             state.segment_started_ms, state.segment_bytes, state.clean_offset),
        )

    def save_offsets(self, group: str, offsets: Mapping[TopicPartition, int]) -> None:
        self._db.executemany("INSERT OR REPLACE INTO offsets VALUES (?, ?, ?, ?)",
                             [(group, tp.topic, tp.partition, offset) for tp, offset in offsets.items()])

    def save_epoch(self, transactional_id: str, epoch: int) -> None:
        self._db.execute("INSERT OR REPLACE INTO producers VALUES (?, ?)", (transactional_id, epoch))

    def append(self, tp: TopicPartition, records: Sequence[StoredRecord]) -> None:
        self._db.executemany(
            "INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(tp.topic, tp.partition, r.offset, r.timestamp, r.key, r.value, encode_headers(r.headers), r.kind,
              r.horizon) for r in records],
        )

    def read(self, tp: TopicPartition, start: int, stop: int, limit: int | None) -> list[StoredRecord]:
        rows = self._db.execute(
            f"SELECT {RECORD_COLUMNS} FROM records WHERE topic = ? AND part = ? AND pos >= ? AND pos < ?"
            " ORDER BY pos LIMIT ?",
            (tp.topic, tp.partition, start, stop, -1 if limit is None else limit),
        )
        return [StoredRecord(offset, ts, key, value, decode_headers(headers), kind, horizon)
                for offset, ts, key, value, headers, kind, horizon in rows]

    def count(self, tp: TopicPartition, start: int, stop: int) -> int:
        (found,) = self._db.execute(
            "SELECT COUNT(*) FROM records WHERE topic = ? AND part = ? AND pos >= ? AND pos < ?",
            (tp.topic, tp.partition, start, stop),
        ).fetchone()
        return found

    def set_kind(self, tp: TopicPartition, offsets: Sequence[int], kind: int) -> None:
        self._db.executemany("UPDATE records SET kind = ? WHERE topic = ? AND part = ? AND pos = ?",
                             [(kind, tp.topic, tp.partition, offset) for offset in offsets])

    def set_horizon(self, tp: TopicPartition, offsets: Sequence[int], horizon: int) -> None:
        self._db.executemany("UPDATE records SET horizon = ? WHERE topic = ? AND part = ? AND pos = ?",
                             [(horizon, tp.topic, tp.partition, offset) for offset in offsets])

    def remove(self, tp: TopicPartition, offsets: Sequence[int]) -> None:
        self._db.executemany("DELETE FROM records WHERE topic = ? AND part = ? AND pos = ?",
                             [(tp.topic, tp.partition, offset) for offset in offsets])

    def first_at_or_after(self, tp: TopicPartition, timestamp: int) -> int | None:
        (found,) = self._db.execute(
            "SELECT MIN(pos) FROM records WHERE topic = ? AND part = ? AND kind != ? AND ts >= ?",
            (tp.topic, tp.partition, MARKER, timestamp),
        ).fetchone()
        return found

    def close(self) -> None:
        self._db.close()
        if self._lock_file is not None:
            self._lock_file.close()


def _log_empty_start(directory: Path, ran_before: bool) -> None:
    """Say that the broker starts with no topics; loudly if a broker used this directory before."""
    if ran_before:
        log.warning("local broker at %s: %s is missing (deleted?); starting an EMPTY broker: earlier topics, "
                    "records and committed offsets are gone", directory, DATABASE)
    else:
        log.debug("local broker at %s: no %s yet; starting an empty broker", directory, DATABASE)


def _lock(path: Path) -> TextIO | None:
    """Hold an exclusive lock on the directory for as long as the storage is open."""
    if fcntl is None:
        return None
    handle = open(path, "a+")  # kept open: closing it releases the lock
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise BrokerInUseError(
            f"{path.parent} is open in another process; the embedded broker serves one process only "
            "(run a Kafka cluster to spread an application over processes)"
        ) from None
    return handle
