"""A state disk that fills up: a small tmpfs when this process may mount one, else a store wrapper.

The tmpfs is the real thing: RocksDB's own writes fail with ENOSPC.  Without the
right to mount (not root), the test app's stores fail their writes the way
RocksDB reports a full disk, for as long as a flag file exists.
STREAMS_FAULTS_DISK=wrapper picks the wrapper even for root.
"""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path


class StateDisk:
    """A folder for state directories that can be filled up and freed again."""

    def __init__(self, folder: Path, size_mb: int = 24) -> None:
        self.folder = folder
        self.size_mb = size_mb
        self.flag = folder.parent / f"{folder.name}.full"
        self.mounted = False
        self._filler = folder / "filler"

    def __enter__(self) -> StateDisk:
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0 and os.environ.get("STREAMS_FAULTS_DISK") != "wrapper":
            done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.size_mb}m", "tmpfs", str(self.folder)],
                                  capture_output=True, text=True)
            self.mounted = done.returncode == 0
        return self

    def __exit__(self, *exc: object) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.folder)], capture_output=True)

    @property
    def kind(self) -> str:
        return f"tmpfs of {self.size_mb} MB" if self.mounted else "store wrapper failing writes with ENOSPC"

    def env(self) -> dict[str, str]:
        return {} if self.mounted else {"FAULTS_DISK_FULL_FLAG": str(self.flag)}

    def fill(self) -> None:
        if not self.mounted:
            self.flag.touch()
            return
        chunk = b"\0" * (1 << 20)
        with open(self._filler, "wb", buffering=0) as f:
            try:
                while True:
                    f.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc

    def free(self) -> None:
        self.flag.unlink(missing_ok=True)
        self._filler.unlink(missing_ok=True)


def fail_store_writes_while(flag: str) -> None:
    """Make every RocksDB store write fail as on a full disk while `flag` exists (test app only)."""
    from streams.state.rocksdb import RocksDBStore

    write_batch = RocksDBStore.write_batch

    def failing_write_batch(self, items, checkpoint=None):
        if os.path.exists(flag):
            raise self._error(OSError(errno.ENOSPC, f"IO error: No space left on device: While appending to file: "
                                                    f"{self.path}/000001.log"))
        return write_batch(self, items, checkpoint)

    RocksDBStore.write_batch = failing_write_batch
