"""One broker per URL per process: memory://NAME in memory, local://PATH in SQLite under PATH.

Every App, Worker and client of the process that names the same URL shares
the same broker, so a test can produce with one client and consume with
another.  A memory broker lives until close_broker(); a local broker holds its
directory (and a lock on it) until close_broker() or the end of the process.
"""

from __future__ import annotations

import atexit
import threading
from pathlib import Path

from streams.transport.embedded.broker import EmbeddedBroker
from streams.transport.embedded.sqlite import SqliteStorage
from streams.transport.embedded.storage import MemoryStorage

SCHEMES = ("memory://", "local://")

_brokers: dict[str, EmbeddedBroker] = {}
_lock = threading.Lock()


def is_embedded(url: str | None) -> bool:
    """Whether a brokers setting names the embedded broker rather than Kafka bootstrap servers."""
    return bool(url) and url.strip().startswith(SCHEMES)


def canonical(url: str) -> str:
    """memory://NAME as given; local://PATH with PATH made absolute, so one directory means one broker."""
    url = url.strip()
    if url.startswith("memory://"):
        return url
    if url.startswith("local://"):
        path = url[len("local://"):]
        if not path:
            raise ValueError("local:// needs a directory, e.g. local://.streams-broker")
        return "local://" + str(Path(path).expanduser().resolve())
    raise ValueError(f"{url!r} is not an embedded broker URL; use memory://[NAME] or local://PATH")


def open_broker(url: str) -> EmbeddedBroker:
    """The process's broker for this URL, opened (and for local://, loaded from disk) on first use."""
    key = canonical(url)
    with _lock:
        broker = _brokers.get(key)
        if broker is None or broker.closed:
            if key.startswith("memory://"):
                broker = EmbeddedBroker(key, MemoryStorage())
            else:
                broker = EmbeddedBroker(key, SqliteStorage(Path(key[len("local://"):])))
            _brokers[key] = broker
        return broker


def close_broker(url: str) -> None:
    """Close a broker: a memory broker's data is gone, a local broker's directory is released.

    Clients still holding it fail with BrokerClosedError; new clients open the URL afresh.
    """
    with _lock:
        broker = _brokers.pop(canonical(url), None)
    if broker is not None:
        broker.close()


@atexit.register
def _close_all() -> None:
    with _lock:
        brokers = list(_brokers.values())
        _brokers.clear()
    for broker in brokers:
        broker.close()
