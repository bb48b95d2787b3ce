"""The worker's web server: health, readiness, metrics, the topology page and store queries.

It runs on the worker's own event loop (aiohttp), so a loop that hangs stops
answering /healthz too, which is what an orchestrator's liveness probe wants.
It binds to web_host (127.0.0.1 unless set) and web_port (0 picks a free
port); start() returns the host:port that the worker advertises to its group.
"""

from __future__ import annotations

import asyncio
import logging
import time
from html import escape
from importlib import resources
from typing import TYPE_CHECKING

from aiohttp import ClientSession, ClientTimeout, web

from streams.compiler.svg import topology_svg
from streams.runtime.prometheus import exposition, registry_for
from streams.runtime.web.responses import json_response
from streams.runtime.web.stores import StoreRoutes

if TYPE_CHECKING:
    from streams.runtime.worker import Worker

log = logging.getLogger(__name__)

RATE_SAMPLE_S = 1.0
FORWARD_TIMEOUT_S = 5.0
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class RateSampler:
    """Records per second into each node on this worker, from two samples of the per-node counts."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.rates: dict[str, float] = {}
        self.totals: dict[str, int] = {}
        self._last: tuple[float, dict[str, int]] | None = None

    def counts(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for task in list(self.worker.tasks.values()):
            for processor in task.processors:
                for name, count in processor.node_counts():
                    totals[name] = totals.get(name, 0) + count
        return totals

    def sample(self) -> None:
        now, totals = time.monotonic(), self.counts()
        if self._last is not None:
            then, before = self._last
            elapsed = max(now - then, 1e-6)
            # A task that moved away takes its counts along: never report a negative rate.
            self.rates = {node: max(0, n - before.get(node, 0)) / elapsed for node, n in totals.items()}
        self.totals = totals
        self._last = (now, totals)

    async def run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(RATE_SAMPLE_S)


class WebServer:
    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.registry = registry_for(worker)
        self.rates = RateSampler(worker)
        self.session: ClientSession | None = None
        self.stores = StoreRoutes(worker, self)
        self._runner: web.AppRunner | None = None
        self._sampler: asyncio.Task[None] | None = None

    def application(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self.index)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/topology", self.topology_page)
        app.router.add_get("/topology.json", self.topology_json)
        app.router.add_get("/static/{name}", self.static)
        self.stores.add_routes(app.router)
        return app

    async def start(self) -> str:
        config = self.worker.config
        self.session = ClientSession(timeout=ClientTimeout(total=FORWARD_TIMEOUT_S))
        self._runner = web.AppRunner(self.application(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, config.web_host, config.web_port)
        await site.start()
        port = self._runner.addresses[0][1]
        self._sampler = asyncio.create_task(self.rates.run())
        endpoint = f"{config.advertised_host}:{port}"
        log.info("web server of worker %s at http://%s (bound to %s)", self.worker.name, endpoint,
                 config.web_host)
        return endpoint

    async def stop(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
            await asyncio.gather(self._sampler, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
        if self.session is not None:
            await self.session.close()

    # -- handlers

    async def index(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/topology")

    async def healthz(self, request: web.Request) -> web.Response:
        worker = self.worker
        return json_response({"status": "ok", "app_id": worker.config.app_id, "worker": worker.name})

    async def readyz(self, request: web.Request) -> web.Response:
        worker = self.worker
        assignment = worker.assignor.assignment if worker.assignor is not None else None
        assigned = sorted(assignment.active) if assignment is not None else []
        body = {"ready": worker.ready, "assigned": assigned, "running": sorted(worker.tasks),
                "rebalancing": worker.rebalances.running}
        if worker.ready:
            return json_response(body)
        return json_response(body, status=503, headers={"Retry-After": "1"})

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=exposition(self.registry), headers={"Content-Type": PROMETHEUS_CONTENT_TYPE})

    async def topology_page(self, request: web.Request) -> web.Response:
        worker = self.worker
        html = PAGE.format(app_id=escape(worker.config.app_id), worker=escape(worker.name),
                           svg=topology_svg(worker.topology))
        return web.Response(text=html, content_type="text/html")

    async def topology_json(self, request: web.Request) -> web.Response:
        worker = self.worker
        return json_response({
            "app_id": worker.config.app_id, "worker": worker.name, "endpoint": worker.endpoint,
            "ready": worker.ready, "tasks": sorted(worker.tasks),
            "standby_tasks": sorted(worker.standbys.stores) if worker.standbys else [],
            "rates": self.rates.rates, "totals": self.rates.totals,
        })

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC:
            raise web.HTTPNotFound()
        text = resources.files("streams.runtime.web").joinpath("static", name).read_text()
        return web.Response(text=text, content_type=STATIC[name])


STATIC = {"topology.js": "application/javascript"}

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{app_id}: topology</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
h1 {{ font-size: 1.3em; margin: 0 0 .2em 0; }}
#status {{ color: #555; margin-bottom: 1em; }}
#status.stale {{ color: #b00; }}
.node rect {{ transition: fill .5s; }}
.node.busy rect {{ fill: #c9dcff; }}
</style>
</head>
<body>
<h1>{app_id}</h1>
<div id="status">worker {worker}: waiting for the first figures…</div>
{svg}
<script src="/static/topology.js"></script>
</body>
</html>
"""
