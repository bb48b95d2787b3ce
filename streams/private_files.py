"""Files only their owner may read: state stores and the local broker hold application data.

Directories are created 0700 and files 0600 by clearing the group and other bits
of the process umask while they are created.  Directories that exist already
are left as they are: they may be the user's own.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

PRIVATE_UMASK = 0o077


_lock = threading.Lock()
_depth = 0
_saved = 0


@contextlib.contextmanager
def private_umask() -> Iterator[None]:
    """Files and directories created inside the block are 0600 and 0700.

    The umask is process-wide: overlapping blocks (nested, or in other threads)
    share one change, and the last to leave restores the umask the first found.
    """
    global _depth, _saved
    with _lock:
        if _depth == 0:
            _saved = os.umask(PRIVATE_UMASK)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                os.umask(_saved)


def make_private_dirs(path: Path) -> None:
    """Create path and its missing parents, each 0700."""
    with private_umask():
        path.mkdir(parents=True, exist_ok=True)


def restrict_files(directory: Path) -> None:
    """Take group and other permissions off the files directly in directory.

    For files written by a library's background threads after the umask was
    restored (RocksDB's flushes and compactions); the 0700 directory already
    keeps them from other users.
    """
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(directory):
            with contextlib.suppress(FileNotFoundError):
                if entry.is_file(follow_symlinks=False) and entry.stat().st_mode & PRIVATE_UMASK:
                    os.chmod(entry.path, stat.S_IMODE(entry.stat().st_mode) & ~PRIVATE_UMASK)
