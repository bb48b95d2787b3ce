"""The pytest fixtures users get with the package, and replay on a durable local:// broker."""

from __future__ import annotations

from streams import App
from streams.runtime.replay import ReplayTarget, replay
from streams.transport import OutRecord, TopicSpec
from streams.transport.embedded import close_broker
from tests.transport_helpers import read_all, run_until


def counting_app(brokers: str, state_dir) -> App:
    app = App("plugin-demo", brokers=brokers, state_dir=state_dir, commit_interval=0.1)
    app.stream("clicks").group_by(lambda k, v: v["user"], name="by-user").count(name="counts").to_stream().to("counts")
    return app


def test_topology_driver_fixture_is_one_line(topology_driver, tmp_path):
    driver = topology_driver(counting_app("memory://unused", tmp_path))
    driver.pipe_input("clicks", "c1", {"user": "ada"})
    driver.pipe_input("clicks", "c2", {"user": "ada"})
    assert driver.read_key_values("counts") == [("ada", 1), ("ada", 2)]
    assert driver.store("counts").get("ada") == 2


async def test_embedded_fixture_runs_an_app(embedded_brokers, tmp_path):
    app = counting_app(embedded_brokers, tmp_path)
    transport = app.transport()
    admin = transport.admin()
    await admin.start()
    await admin.create_topics([TopicSpec("clicks", 1), TopicSpec("counts", 1)])
    producer = transport.producer()
    await producer.start()
    await producer.send_many([OutRecord("clicks", 0, b"c1", b'{"user": "bo"}', None, ())])
    await producer.flush()
    await run_until(app, lambda: app.store("counts").get("bo") == 1)
    assert await read_all(transport, "counts") == [(b"bo", b"1")]
    await producer.stop()
    await admin.stop()


async def test_replay_on_local_broker_reproduces_outputs(tmp_path, monkeypatch):
    monkeypatch.delenv("STREAMS_BROKERS", raising=False)
    monkeypatch.setenv("STREAMS_CACHE_MAX_BYTES", "0")  # one output per input, to compare the replay's outputs
    url = f"local://{tmp_path / 'broker'}"
    app = counting_app(url, tmp_path / "state")
    transport = app.transport()
    admin = transport.admin()
    await admin.start()
    await admin.create_topics([TopicSpec("clicks", 1), TopicSpec("counts", 1)])
    producer = transport.producer()
    await producer.start()
    await producer.send_many([OutRecord("clicks", 0, f"c{i}".encode(), f'{{"user": "u{i % 3}"}}'.encode(), None, ())
                              for i in range(30)])
    await producer.flush()
    await producer.stop()
    await admin.stop()
    await run_until(app, lambda: dict(app.store("counts").items()) == {"u0": 10, "u1": 10, "u2": 10})
    first = await read_all(transport, "counts")
    lines = await replay(app.config, app.topology(), ReplayTarget(earliest=True), out=lambda line: None)
    assert "  set clicks[0] to offset 0" in lines
    assert "  delete internal topic plugin-demo-counts-changelog" in lines
    close_broker(url)  # durable: a new broker instance on the same path sees everything
    again = counting_app(url, tmp_path / "state")
    await run_until(again, lambda: dict(again.store("counts").items()) == {"u0": 10, "u1": 10, "u2": 10})
    both = await read_all(again.transport(), "counts")
    assert len(first) == 30 and both == first + first
    close_broker(url)
