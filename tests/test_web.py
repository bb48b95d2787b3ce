"""The worker's web server on the embedded broker: health, readiness, the topology page, store queries."""

from __future__ import annotations

import asyncio
import re
import uuid

import pytest

from streams import App, Tumbling
from streams.config import StreamsConfig
from streams.partitioner import partition_for
from streams.transport import OutRecord, TopicSpec
from streams.transport.embedded import EmbeddedTransport, close_broker
from tests.kafka_helpers import running, wait_for
from tests.web_helpers import get

FAST = {"session_timeout_ms": 2000, "heartbeat_interval_ms": 100}
BASE = 1_700_000_000_000


@pytest.fixture
def broker_url():
    url = f"memory://web-{uuid.uuid4().hex[:8]}"
    yield url
    close_broker(url)


async def setup(url: str, tmp_path, **settings) -> App:
    transport = EmbeddedTransport(url)
    admin = transport.admin()
    await admin.start()
    await admin.create_topics([TopicSpec("orders", 4), TopicSpec("big", 4)])
    producer = transport.producer()
    await producer.start()
    records = [(f"u{i % 10}", b'{"amount": %d}' % i, BASE + i * 1000) for i in range(100)]
    await producer.send_many([OutRecord("orders", partition_for(k.encode(), 4), k.encode(), v, ts, ())
                              for k, v, ts in records])
    await producer.flush()
    await producer.stop()
    await admin.stop()
    app = App("web-" + uuid.uuid4().hex[:6], state_dir=tmp_path, commit_interval=0.1, consumer_config=FAST,
              **settings)
    app.configure(brokers=url, web_port=settings.get("web_port", 0))
    orders = app.stream("orders")
    orders.filter(lambda k, v: v["amount"] >= 50).to("big")
    grouped = orders.group_by_key()
    grouped.count(name="counts")
    grouped.window(Tumbling(10_000)).count(name="per-10s", retention=3_600_000)
    orders.group_by(lambda k, v: "even" if v["amount"] % 2 == 0 else "odd", name="parity").count(name="parity")
    return app


async def test_health_readiness_and_stores(broker_url, tmp_path):
    app = await setup(broker_url, tmp_path)
    async with running(app) as worker:
        await wait_for(lambda: worker.ready and worker.metrics.get("records_processed") == 200)
        base = f"http://{worker.endpoint}"
        assert worker.endpoint.startswith("127.0.0.1:")
        status, body, _ = await get(base + "/healthz")
        assert status == 200 and body["status"] == "ok" and body["app_id"] == app.app_id
        status, body, _ = await get(base + "/readyz")
        assert status == 200 and body["ready"] and body["running"] == [f"{s}_{p}" for s in (0, 1) for p in range(4)]

        status, body, _ = await get(base + "/stores/counts/u3")
        assert status == 200 and body["value"] == 10 and body["found"] and body["standby"] is False
        assert body["task"] == f"0_{partition_for(b'u3', 4)}" and body["served_by"] == worker.endpoint
        assert "value_b64" not in body
        status, body, _ = await get(base + "/stores/counts/nobody")
        assert status == 404 and body["found"] is False and body["value"] is None
        status, body, _ = await get(base + "/stores/counts?from=u2&to=u4")
        assert status == 200 and body["entries"] == [{"key": f"u{i}", "value": 10} for i in (2, 3, 4)]
        status, body, _ = await get(base + "/stores/counts?limit=3")
        assert [e["key"] for e in body["entries"]] == ["u0", "u1", "u2"] and body["truncated"] is True

        # u3's records are at 3, 13, 23 ... 93 seconds: one per 10-second window
        status, body, _ = await get(base + f"/stores/per-10s/u3?from={BASE + 20_000}&to={BASE + 40_000}")
        assert status == 200 and [(w["start"], w["value"]) for w in body["windows"]] == [
            (BASE + 20_000, 1), (BASE + 30_000, 1), (BASE + 40_000, 1)]
        status, body, _ = await get(base + f"/stores/per-10s?from={BASE}&to={BASE}")
        assert status == 200 and sorted((e["key"], e["value"]) for e in body["entries"]) == [
            (f"u{i}", 1) for i in range(10)]

        status, body, _ = await get(base + "/stores")
        assert {s["name"]: s["windowed"] for s in body["stores"]} == {"counts": False, "per-10s": True,
                                                                      "parity": False}
        await wait_for(lambda: sum(n for _, n in app.store("parity").items()) == 100)
        status, body, _ = await get(base + "/stores/parity")
        assert body["entries"] == [{"key": "even", "value": 50}, {"key": "odd", "value": 50}]
        status, body, _ = await get(base + "/stores/nothing/x")
        assert status == 404 and body["error"] == "no store named 'nothing'"
        status, body, _ = await get(base + "/stores/per-10s/u3?from=yesterday")
        assert status == 400 and body["error"].startswith("from:")
        status, body, _ = await get(base + "/stores/counts?limit=0")
        assert status == 400 and body["error"].startswith("limit:")


async def test_python_store_view_and_unavailable_task(broker_url, tmp_path):
    from streams.errors import StoreUnavailableError

    app = await setup(broker_url, tmp_path)
    async with running(app) as worker:
        await wait_for(lambda: worker.ready and worker.metrics.get("records_processed") == 200)
        result = app.store("counts").query("u7")
        assert (result.found, result.value, result.served_by) == (True, 10, worker.endpoint)
        assert app.store("counts").get("u7") == 10 and await app.store("counts").get_async("nobody", 0) == 0
        windows = app.store("per-10s").fetch("u7", BASE, BASE + 10_000)
        assert [(w.start, n) for w, n in windows] == [(BASE, 1), (BASE + 10_000, 1)]
        # A task that is not open anywhere (here: closed, as a rebalance would) answers 503, never a value.
        task_id = f"0_{partition_for(b'u7', 4)}"
        async with worker._lock:
            await worker._close_task(task_id)
            status, body, headers = await get(f"http://{worker.endpoint}/stores/counts/u7")
            assert status == 503 and headers["Retry-After"] == "1" and body["retry_after"] == 1.0
            assert task_id in body["error"]
            with pytest.raises(StoreUnavailableError) as raised:
                app.store("counts").get("u7")
            assert raised.value.retry_after == 1.0
            status, body, _ = await get(f"http://{worker.endpoint}/stores/counts")
            assert status == 503 and task_id in body["error"]
            status, body, _ = await get(f"http://{worker.endpoint}/readyz")
            assert status == 503 and body["ready"] is False


async def test_topology_page_is_self_contained(broker_url, tmp_path):
    app = await setup(broker_url, tmp_path)
    async with running(app) as worker:
        await wait_for(lambda: worker.metrics.get("records_processed") == 200)
        status, html, headers = await get(f"http://{worker.endpoint}/topology")
        assert status == 200 and headers["Content-Type"].startswith("text/html")
        nodes = [n.name for sub in worker.topology.subtopologies for n in sub.nodes]
        assert sorted(re.findall(r'data-rate-for="([^"]+)"', html)) == sorted(nodes)
        assert html.count('class="subtopology"') == len(worker.topology.subtopologies) == 2
        assert ">orders<" in html and ">big<" in html and "counts" in html and "per-10s" in html
        # the repartition topic appears twice: written by one sub-topology, read by the other
        assert html.count(f"<title>{app.app_id}-parity-repartition</title>") == 2
        # every asset comes from the worker: no absolute URL to fetch anything from
        assert re.findall(r'(?:src|href)="([^"]+)"', html) == ["/static/topology.js"]
        status, script, headers = await get(f"http://{worker.endpoint}/static/topology.js")
        assert status == 200 and "javascript" in headers["Content-Type"] and "/topology.json" in script
        assert "http" not in script
        status, _, _ = await get(f"http://{worker.endpoint}/static/other.js")
        assert status == 404
        await asyncio.sleep(1.2)  # the rate sampler's second sample
        status, body, _ = await get(f"http://{worker.endpoint}/topology.json")
        assert status == 200 and set(body["rates"]) == set(nodes) and body["totals"][nodes[0]] == 100


async def test_web_server_is_off_unless_asked(broker_url, tmp_path):
    app = await setup(broker_url, tmp_path)
    app.configure(web_port=None)
    app.config = StreamsConfig.build(app.app_id, {"brokers": broker_url, "state_dir": tmp_path}, environ={})
    assert app.config.web_port is None
    async with running(app) as worker:
        assert worker.web is None and worker.endpoint is None


def test_web_settings_are_validated():
    assert StreamsConfig.build("a", {}, {"STREAMS_WEB_PORT": "8080"}).web_port == 8080
    assert StreamsConfig.build("a", {"web_port": 1}, {"STREAMS_WEB_PORT": "2"}).web_port == 2
    assert StreamsConfig("a").web_host == "127.0.0.1" and StreamsConfig("a").web_port is None
    assert StreamsConfig("a", web_host="::").advertised_host not in ("::", "[::]")
    assert StreamsConfig("a", web_advertised_host="::1").advertised_host == "[::1]"
    for settings, message in [({"web_port": 70000}, "web_port: must be at most 65535"),
                              ({"web_port": -1}, "web_port: must be a whole number"),
                              ({"web_host": "a b"}, "web_host: expected a host"),
                              ({"web_advertised_host": ""}, "web_advertised_host: expected a host"),
                              ({"metrics_recording_level": "trace"}, "metrics_recording_level: 'trace'")]:
        with pytest.raises(ValueError, match=re.escape(message)):
            StreamsConfig("a", **settings)
    with pytest.raises(ValueError, match="web_port: STREAMS_WEB_PORT='x' is not a whole number"):
        StreamsConfig.build("a", {}, {"STREAMS_WEB_PORT": "x"})
