"""Store queries over HTTP: one key, a key range, a key's windows, or all windows in a time range.

    GET /stores                                  the stores and their kinds
    GET /stores/<store>/<key>[?standby=true]     one key (windowed stores: its windows, &from=&to= in ms)
    GET /stores/<store>?from=&to=[&limit=]       keys in [from, to] (windowed stores: windows starting then)

Keys in the path are read as the store's key serde expects (a number for an
int serde, JSON for a JSON serde, else text).  A key's query is answered here
or forwarded to the worker that runs its task (streams/runtime/queries.py);
a range asks every worker for its share and answers only when the shares
cover every task of the store.  Workers forward with base64 keys and a header
that stops the receiver from forwarding again.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aiohttp import web

from streams.runtime.queries import (
    FORWARDED_HEADER,
    StoreDirectory,
    b64,
    decode_key_text,
    is_windowed,
    unb64,
    window_json,
)
from streams.runtime.web.forward import fetch_json
from streams.runtime.web.responses import json_response, unavailable
from streams.runtime.worker import running_workers
from streams.state.global_store import GLOBAL_KIND
from streams.state.spec import StoreSpec

if TYPE_CHECKING:
    from streams.runtime.web.server import WebServer
    from streams.runtime.worker import Worker

DEFAULT_LIMIT, MAX_LIMIT = 1000, 100_000


class BadRequest(Exception):
    """A query parameter that cannot be read; the message names it."""


class StoreRoutes:
    def __init__(self, worker: Worker, server: WebServer) -> None:
        self.worker = worker
        self.server = server

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/stores", self.list_stores)
        router.add_get("/stores/{store}", self.scan)
        router.add_get("/stores/{store}/{key:.+}", self.key)

    def directory(self) -> StoreDirectory:
        return StoreDirectory(running_workers(self.worker.config.app_id) or [self.worker])

    def _spec(self, request: web.Request) -> StoreSpec | None:
        return self.worker.topology.stores.get(request.match_info["store"])

    def _no_store(self, request: web.Request) -> web.Response:
        return json_response({"error": f"no store named {request.match_info['store']!r}",
                              "stores": sorted(self.worker.topology.stores)}, status=404)

    async def list_stores(self, request: web.Request) -> web.Response:
        stores = [{"name": s.name, "kind": s.kind, "windowed": is_windowed(s)}
                  for s in sorted(self.worker.topology.stores.values(), key=lambda s: s.name)]
        return json_response({"stores": stores})

    # -- one key

    async def key(self, request: web.Request) -> web.Response:
        spec = self._spec(request)
        if spec is None:
            return self._no_store(request)
        query = request.query
        try:
            raw_key = self._raw_key(spec, request.match_info["key"], query.get("encoding"))
            time_from, time_to = _time(query, "from"), _time(query, "to")
        except BadRequest as exc:
            return json_response({"error": str(exc)}, status=400)
        allow_standby = query.get("standby", "").lower() in ("1", "true", "yes")
        forwarded = FORWARDED_HEADER in request.headers
        directory = self.directory()
        plan = directory.plan_key(spec, raw_key, allow_standby, forwarded)
        if plan.local is not None:
            if plan.standby and plan.worker is not None:
                await plan.worker.refresh_standby_lag(plan.task, spec.name)
            if is_windowed(spec):
                body = directory.answer_windows(spec, plan, spec.key_serde.deserialize(raw_key), time_from, time_to)
                return json_response(_public(body) if query.get("encoding") != "base64" else body)
            body = directory.answer_key(spec, plan, raw_key)
            return json_response(_public(body) if query.get("encoding") != "base64" else body,
                                 status=200 if body["found"] else 404)
        params = {"encoding": "base64", **{k: v for k, v in query.items() if k in ("from", "to", "standby")}}
        path = f"/stores/{quote(spec.name, safe='')}/{b64(raw_key)}"
        tried = []
        for endpoint in plan.forward_to:
            status, body = await fetch_json(self.server.session, endpoint, path, params)
            if status in (0, 503):
                tried.append(f"{endpoint}: {body.get('error') if isinstance(body, dict) else status}")
                continue
            return json_response(_public(body) if query.get("encoding") != "base64" else body, status=status)
        reason = plan.unavailable or f"task {plan.task}: " + "; ".join(tried)
        return unavailable(reason, task=plan.task)

    @staticmethod
    def _raw_key(spec: StoreSpec, text: str, encoding: str | None) -> bytes:
        if encoding == "base64":
            try:
                return unb64(text)
            except ValueError as exc:
                raise BadRequest(f"key: not base64: {exc}") from None
        try:
            return spec.key_serde.serialize(decode_key_text(spec, text))
        except Exception as exc:
            raise BadRequest(f"key: {text!r} does not fit the store's key serde: {exc}") from None

    # -- ranges

    async def scan(self, request: web.Request) -> web.Response:
        spec = self._spec(request)
        if spec is None:
            return self._no_store(request)
        query = request.query
        windowed = is_windowed(spec)
        try:
            limit = int(query.get("limit", DEFAULT_LIMIT))
            if not 0 < limit <= MAX_LIMIT:
                raise ValueError
        except ValueError:
            return json_response({"error": f"limit: must be a whole number from 1 to {MAX_LIMIT}"}, status=400)
        try:
            if windowed:
                bounds: tuple[Any, Any] = (_time(query, "from"), _time(query, "to"))
            else:
                bounds = tuple(None if query.get(p) is None else self._raw_key(spec, query[p], query.get("encoding"))
                               for p in ("from", "to"))
        except BadRequest as exc:
            return json_response({"error": str(exc)}, status=400)
        directory = self.directory()
        entries, covered = self._local_share(directory, spec, windowed, bounds, limit)
        if query.get("local") == "1" and FORWARDED_HEADER in request.headers:
            return json_response({"entries": entries, "tasks": covered})
        needed = set(directory.tasks_of(spec.name)) if spec.kind != GLOBAL_KIND else set()
        covered_all = set(covered)
        mine = directory.local_endpoints()
        others = sorted(e for e in directory.assignment_hosts() if e not in mine)
        params = {"local": "1", "limit": str(limit), "encoding": "base64"}
        if windowed:
            params.update({k: str(v) for k, v in zip(("from", "to"), bounds, strict=True) if v is not None})
        else:
            params.update({k: b64(v) for k, v in zip(("from", "to"), bounds, strict=True) if v is not None})
        if needed - covered_all:
            answers = await asyncio.gather(*(fetch_json(self.server.session, e, f"/stores/{quote(spec.name, safe='')}",
                                                        params) for e in others))
            for endpoint, (status, body) in zip(others, answers, strict=True):
                if status != 200:
                    return unavailable(f"the worker at {endpoint} did not give its share of {spec.name}")
                entries.extend(body["entries"])
                covered_all.update(body["tasks"])
        missing = sorted(needed - covered_all)
        if missing:
            return unavailable(f"tasks {', '.join(missing)} of {spec.name} are open nowhere right now "
                               "(a rebalance or a restore is under way, or a worker runs without a web server)")
        if windowed:
            entries.sort(key=lambda e: (e["start"], e["end"], e["key_b64"]))
        else:
            entries.sort(key=lambda e: unb64(e["key_b64"]))
        truncated = len(entries) > limit
        entries = entries[:limit]
        return json_response({"store": spec.name, "from": query.get("from"), "to": query.get("to"),
                              "entries": [_public(e) for e in entries], "truncated": truncated})

    @staticmethod
    def _local_share(directory: StoreDirectory, spec: StoreSpec, windowed: bool, bounds: tuple[Any, Any],
                     limit: int) -> tuple[list[dict[str, Any]], list[str]]:
        serialize_key = spec.key_serde.serialize
        if windowed:
            windows, covered = directory.local_windows(spec, bounds[0], bounds[1], limit)
            return [{**window_json(spec, w, v), "key_b64": b64(serialize_key(w.key))} for w, v in windows], covered
        found, covered = directory.local_range(spec, bounds[0], bounds[1], limit)
        deserialize_key, deserialize_value = spec.key_serde.deserialize, spec.value_serde.deserialize
        return [{"key": deserialize_key(k), "value": deserialize_value(v), "key_b64": b64(k)}
                for k, v in found], covered


def _public(body: Any) -> Any:
    """An answer without the raw bytes that only workers forwarding to each other need."""
    if not isinstance(body, dict):
        return body
    public = {k: v for k, v in body.items() if k not in ("key_b64", "value_b64")}
    if "windows" in public:
        public["windows"] = [_public(w) for w in public["windows"]]
    return public


def _time(query: Any, name: str) -> int | None:
    text = query.get(name)
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise BadRequest(f"{name}: expected a time in epoch milliseconds, got {text!r}") from None
