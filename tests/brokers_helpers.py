"""Apps for tests that run on the embedded broker and on Kafka alike (see the broker_url fixture)."""

from __future__ import annotations

from streams import App
from tests.conftest import unique_name

FAST = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 200}


def make_app(url: str, tmp_path, prefix: str = "app", **settings) -> App:
    """An app with a fresh id; configure() makes the URL win over STREAMS_BROKERS."""
    settings = {"commit_interval": 0.2, "consumer_config": FAST, **settings}
    app = App(unique_name(prefix), state_dir=tmp_path, **settings)
    app.configure(brokers=url)
    return app
