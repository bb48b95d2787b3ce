"""The worker's web server (aiohttp): health, readiness, Prometheus metrics, the topology page, store queries."""

from streams.runtime.web.server import WebServer

__all__ = ["WebServer"]
