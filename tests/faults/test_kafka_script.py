"""scripts/kafka formats a broker's storage whatever cluster id it draws.

A cluster id is a random UUID in URL-safe base64, and one in 64 starts with
"-", which Kafka's storage tool read as an option when it followed "-t": that
broker never started.  The real storage tool formats here with such an id.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import uuid

from tests.faults.broker import KAFKA_SCRIPT, shared_libs


def load_script(monkeypatch, home):
    monkeypatch.setenv("STREAMS_KAFKA_LIBS", str(shared_libs()))  # the session broker's jars
    monkeypatch.setenv("STREAMS_KAFKA_HOME", str(home))
    loader = importlib.machinery.SourceFileLoader("kafka_script", str(KAFKA_SCRIPT))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader("kafka_script", loader))
    loader.exec_module(module)
    return module


def test_a_cluster_id_that_starts_with_a_dash_is_formatted(kafka_libs, monkeypatch, tmp_path):
    script = load_script(monkeypatch, tmp_path)
    dashed = uuid.UUID(bytes=b"\xf8" + bytes(range(15)))  # 0xf8's top six bits are 62: "-" in URL-safe base64
    monkeypatch.setattr(script.uuid, "uuid4", lambda: dashed)
    script.write_config()
    script.format_storage()
    meta = (tmp_path / "data" / "metadata" / "meta.properties").read_text()
    assert "cluster.id=-" in meta, meta
