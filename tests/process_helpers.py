"""Run workers as separate processes, as users do: `python -m streams worker module:app`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


class WorkerProcess:
    """A worker subprocess of an app in tests/apps (pipeline.py by default), configured through its environment."""

    def __init__(self, brokers: str, env: dict[str, str], log_path: Path, app: str = "tests.apps.pipeline:app") -> None:
        self.env = {**os.environ, "STREAMS_BROKERS": brokers, "PYTHONPATH": str(REPO), **env}
        self.log_path = log_path
        self.app = app
        self.proc: subprocess.Popen | None = None

    def start(self) -> WorkerProcess:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streams", "worker", self.app],
            cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.wait(10)

    def terminate(self, timeout: float = 30) -> int:
        self.signal(signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None
