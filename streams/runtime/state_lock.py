"""One worker per state folder: a lock taken before the worker does anything else.

Two workers sharing state_dir/app_id would open the same RocksDB stores (a task
on one, its standby on the other) and both fail half-way through a rebalance.
The lock is an flock(2) on a file in the folder: it conflicts between processes
and between two workers of one process alike, and the kernel releases it when
its holder dies, so a killed worker leaves nothing to clean up.
"""

from __future__ import annotations

import fcntl
import os

from streams.config import StreamsConfig
from streams.errors import StateDirLockedError

LOCK_FILE = ".lock"


class StateDirLock:
    """The lock on one application's state folder."""

    def __init__(self, config: StreamsConfig) -> None:
        self.folder = config.state_path()
        self.path = config.state_path(LOCK_FILE)
        self.app_id = config.app_id
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock, or raise StateDirLockedError naming the folder and the holder's process."""
        if self._fd is not None:
            return
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise StateDirLockedError(
                f"state dir {self.folder} is in use by another worker of {self.app_id!r}{holder}",
                hint="give each worker on one machine its own state_dir") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None


def _holder(fd: int) -> str:
    """Which process holds the lock, as its holder wrote it, for the error message."""
    try:
        pid = int(os.pread(fd, 32, 0).decode().strip())
    except (OSError, ValueError):
        return ""
    return " in this process" if pid == os.getpid() else f" in process {pid}"
