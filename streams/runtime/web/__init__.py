"""The worker's web server (aiohttp): health, readiness, Prometheus metrics, the topology page, store queries.

server.py runs it; stores.py answers store queries; forward.py asks other workers.
"""
