"""The topology page in a real browser: headless Chromium draws the picture and live rates from a worker
on the real broker, and leaves a screenshot in the test's tmp dir."""

from __future__ import annotations

import asyncio
import re
import time

from streams import App
from tests.browser import chromium
from tests.conftest import create_topics, unique_name
from tests.kafka_helpers import FAST_GROUP, produce, running, wait_for

RATE = re.compile(r'data-rate-for="([^"]+)"[^>]*>([\d.]+k?) rec/s')


async def feed(brokers: str, topic: str, stop: asyncio.Event) -> None:
    n = 0
    while not stop.is_set():
        await produce(brokers, topic, [(f"u{i % 7}", {"amount": i}) for i in range(n, n + 50)])
        n += 50
        await asyncio.sleep(0.2)


async def test_topology_page_renders_picture_and_rates(brokers, tmp_path):
    src, out = unique_name("orders"), unique_name("big")
    await create_topics(brokers, {src: 2, out: 2})
    app = App(unique_name("topo"), brokers=brokers, state_dir=tmp_path / "state", commit_interval=0.5,
              consumer_config=FAST_GROUP, web_port=0)
    orders = app.stream(src)
    orders.filter(lambda k, v: v["amount"] % 2 == 0).map_values(lambda v: v["amount"]).to(out)
    orders.group_by(lambda k, v: v["amount"] % 3, key_serde="int", name="mod3").count(name="per-mod3")
    stop = asyncio.Event()
    async with running(app) as worker:
        feeding = asyncio.create_task(feed(brokers, src, stop))
        try:
            await wait_for(lambda: worker.metrics.get("records_processed") > 0, timeout=60)
            await asyncio.sleep(1.5)  # the page's rates come from two samples a second apart
            url = f"http://{worker.endpoint}/topology"
            started = time.monotonic()
            dom = (await chromium(url, tmp_path / "profile", "--dump-dom")).decode()
            shot = tmp_path / "topology.png"
            await chromium(url, tmp_path / "profile", f"--screenshot={shot}")
            print(f"two chromium runs took {time.monotonic() - started:.1f}s; screenshot at {shot}")
        finally:
            stop.set()
            await feeding
    assert '<svg xmlns="http://www.w3.org/2000/svg" id="topology"' in dom
    nodes = {n.name for sub in worker.topology.subtopologies for n in sub.nodes}
    assert set(re.findall(r'<g class="node[^"]*" data-node="([^"]+)"', dom)) == nodes
    assert dom.count('class="subtopology"') == 2
    rates = dict(RATE.findall(dom))
    assert set(rates) == nodes, f"every node shows a rate drawn by the page's script: {rates}"
    assert any(float(r.rstrip("k")) > 0 for r in rates.values()), rates
    assert "data-updated=" in dom and "ready" in dom
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
