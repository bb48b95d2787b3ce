"""A dedicated broker per fault test, driven through scripts/kafka with its own home and ports.

Fault tests kill, restart and freeze their broker, so they never use the session's
shared one.  Each dedicated broker keeps its data under the test's tmp folder and
reuses the jars fetched once for the session (STREAMS_KAFKA_LIBS).
"""

from __future__ import annotations

import os
import random
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
KAFKA_SCRIPT = REPO / "scripts" / "kafka"


def shared_libs() -> Path:
    """Where the session's broker keeps its jars, so a dedicated broker need not fetch them again."""
    if "STREAMS_KAFKA_LIBS" in os.environ:
        return Path(os.environ["STREAMS_KAFKA_LIBS"])
    return Path(os.environ.get("STREAMS_KAFKA_HOME", REPO / ".kafka")) / "libs"


def ephemeral_low() -> int:
    """The lowest port the kernel hands out to outgoing connections."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port_block(size: int = 3) -> int:
    """A port p with p .. p+size-1 all free on loopback (client, controller and SASL listeners).

    Below the kernel's ephemeral range: a port in it may be taken by some client's outgoing
    connection between this check and the broker's start, or while a killed broker is down.
    """
    rng = random.Random()
    top = max(ephemeral_low(), 20000 + 100 * size)
    for _ in range(200):
        base = rng.randrange(20000, top - size)
        sockets = []
        try:
            for port in range(base, base + size):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError("no block of free ports found")


class DedicatedBroker:
    """One single-node broker this test owns: start, stop, kill -9, restart, pause and resume."""

    def __init__(self, home: Path, port: int | None = None, heap: str = "384m") -> None:
        self.home = home
        self.port = port or free_port_block()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.env = {**os.environ, "STREAMS_KAFKA_HOME": str(home), "STREAMS_KAFKA_PORT": str(self.port),
                    "STREAMS_KAFKA_LIBS": str(shared_libs()), "STREAMS_KAFKA_HEAP": heap}
        for name in ("STREAMS_KAFKA_CONTROLLER_PORT", "STREAMS_KAFKA_SASL_PORT"):
            self.env.pop(name, None)
        self.paused = False

    def run(self, command: str, check: bool = True) -> str:
        done = subprocess.run([sys.executable, str(KAFKA_SCRIPT), command], env=self.env, capture_output=True,
                              text=True, timeout=300)
        if check and done.returncode != 0:
            raise RuntimeError(f"scripts/kafka {command} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def start(self) -> float:
        """Start (or restart after a kill) and return the seconds it took to answer."""
        started = time.monotonic()
        out = self.run("start")
        assert re.search(rf":{self.port}\b", out), out
        return time.monotonic() - started

    def ensure_running(self) -> None:
        if self.paused:
            self.resume()
        if "running pid" in self.run("status", check=False):
            return
        self.start()

    def kill(self) -> None:
        self.run("kill")

    def pause(self) -> None:
        self.run("pause")
        self.paused = True

    def resume(self) -> None:
        self.run("resume")
        self.paused = False

    def stop(self) -> None:
        self.run("stop", check=False)

    def log_tail(self) -> str:
        return self.run("logs", check=False)[-3000:]
