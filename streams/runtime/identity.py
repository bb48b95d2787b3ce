"""A worker's id, kept in its state directory across restarts.

Under exactly_once_v2 the worker's transactional producer is named after it.
A worker restarted on the same state directory (after kill -9, say) starts its
producer with the same transactional id, and the broker then aborts at once
the transaction the crashed incarnation left open.  With a new id that
transaction would stay open until the transaction timeout, and its pending
offsets would keep every other worker from taking over the crashed one's input
partitions until then.

The id file stays locked while a worker runs; a second worker on the same
directory takes a fresh id instead of fencing the first one's producer.
"""

from __future__ import annotations

import fcntl
import logging
import os
import uuid
from pathlib import Path

log = logging.getLogger(__name__)

ID_FILE = "worker.id"


class WorkerId:
    """The id, and the lock that keeps it this worker's while it runs."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(directory / ID_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            self._fd: int | None = None
            self.value = uuid.uuid4().hex
            log.warning("another worker holds %s; this one takes the id %s for now", directory / ID_FILE, self.value)
            return
        self._fd = fd
        stored = os.read(fd, 100).decode(errors="replace").strip()
        if not stored.isalnum():
            stored = uuid.uuid4().hex
            os.ftruncate(fd, 0)
            os.pwrite(fd, stored.encode(), 0)
            os.fsync(fd)
        self.value = stored

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the file drops its lock
            self._fd = None
