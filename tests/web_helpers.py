"""Helpers for tests of the worker's web server: free ports and HTTP GETs."""

from __future__ import annotations

import socket
from typing import Any

import aiohttp
import orjson


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def get(url: str, timeout: float = 10.0) -> tuple[int, Any, dict[str, str]]:
    """(status, JSON body or text, headers) of a GET."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        async with session.get(url) as response:
            text = await response.text()
            try:
                body: Any = orjson.loads(text)
            except orjson.JSONDecodeError:
                body = text
            return response.status, body, dict(response.headers)
