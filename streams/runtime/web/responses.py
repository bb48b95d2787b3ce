"""JSON answers of the worker's web server."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from streams.runtime.queries import RETRY_AFTER_S


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(body, default=str, option=orjson.OPT_NON_STR_KEYS), status=status,
                        content_type="application/json", headers=headers)


def unavailable(reason: str, **extra: Any) -> web.Response:
    """503 with a Retry-After hint: the answer exists, but not here and not now."""
    return json_response({"error": reason, "retry_after": RETRY_AFTER_S, **extra}, status=503,
                         headers={"Retry-After": str(int(RETRY_AFTER_S))})
