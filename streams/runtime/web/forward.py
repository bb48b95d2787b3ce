"""Asking another worker's web server, as forwarded queries do."""

from __future__ import annotations

from typing import Any

import aiohttp

from streams.runtime.queries import FORWARDED_HEADER


async def fetch_json(session: aiohttp.ClientSession, endpoint: str, path: str,
                     params: dict[str, str]) -> tuple[int, Any]:
    """(status, JSON body) of a GET to another worker; status 0 with an error when it does not answer.

    The header tells the receiver to answer from what it holds and never forward again.
    """
    try:
        async with session.get(f"http://{endpoint}{path}", params=params,
                               headers={FORWARDED_HEADER: "1"}) as response:
            return response.status, await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as error:
        return 0, {"error": f"did not answer ({type(error).__name__}: {error})"}
