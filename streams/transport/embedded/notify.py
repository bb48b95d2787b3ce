"""Wake-ups for clients waiting on the broker, whatever event loop or thread they run in.

The broker is shared by every client in the process, and tests commonly run
one event loop per test, so the broker holds no loop-bound object: a waiter
registers a future of its own loop, and a change resolves it thread-safely.
A version counter closes the race between checking for news and waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading


class Notifier:
    def __init__(self) -> None:
        self.version = 0
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def notify(self) -> None:
        """Something changed: wake every waiter."""
        with self._lock:
            self.version += 1
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            _wake(loop, future)

    async def wait(self, seen: int, timeout_s: float) -> None:
        """Return once the version differs from `seen`, or after timeout_s."""
        if timeout_s <= 0:
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        entry = (loop, future)
        with self._lock:
            if self.version != seen:
                return
            self._waiters.append(entry)
        try:
            await asyncio.wait([future], timeout=timeout_s)
        finally:
            with self._lock, contextlib.suppress(ValueError):
                self._waiters.remove(entry)
            future.cancel()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _wake(loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]) -> None:
    if loop.is_closed():
        return
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        _resolve(future)
    else:
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(_resolve, future)
