"""app.store(name) in Python: a key's lookup goes to whichever worker holds the key.

A key held by a worker in this process is read directly; a key held elsewhere
is asked of its worker's web server (blocking in get() and query(), awaited in
get_async() and query_async()).  While the key's task moves or restores, the
lookup raises StoreUnavailableError, whose retry_after says when to try again.
Scans (items(), len(), fetch_all()) cover the tasks of this process only; the
HTTP range endpoint covers all workers.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

from streams.errors import StoreUnavailableError
from streams.runtime.queries import (
    FORWARDED_HEADER,
    KeyQueryResult,
    Plan,
    StoreDirectory,
    b64,
    is_windowed,
    read_value,
    unb64,
)
from streams.runtime.worker import running_workers
from streams.state.global_store import GLOBAL_KIND
from streams.state.query import store_view
from streams.state.spec import StoreSpec
from streams.windows.definitions import Windowed
from streams.windows.query import WindowStoreView

TIMEOUT_S = 5.0


class RoutedStoreView:
    """A store of the application, queried from any process that runs one of its workers."""

    def __init__(self, app_id: str, spec: StoreSpec) -> None:
        self.app_id = app_id
        self.spec = spec

    def _directory(self) -> StoreDirectory:
        workers = running_workers(self.app_id)
        if not workers:
            raise RuntimeError("interactive queries need a running worker of this app in this process")
        return StoreDirectory(workers)

    # -- one key

    def query(self, key: Any, allow_standby: bool = False) -> KeyQueryResult:
        """The key's value and where it came from; a standby copy may answer only if allowed (with its lag).

        The lag of a standby in this process is as of the worker's last end-offset lookup (every few
        seconds; None before the first); query_async() and HTTP queries look it up first.
        """
        plan, raw_key = self._plan(key, allow_standby)
        if plan.local is not None:
            return self._local_result(plan, key, raw_key)
        failures = []
        for endpoint in plan.forward_to:
            status, body = _get_sync(endpoint, self._path(raw_key), self._params(allow_standby))
            if status in (200, 404):
                return self._remote_result(key, body)
            failures.append(f"{endpoint}: {body.get('error', status) if isinstance(body, dict) else status}")
        raise StoreUnavailableError(plan.unavailable or f"{self.spec.name}: task {plan.task}: {'; '.join(failures)}")

    async def query_async(self, key: Any, allow_standby: bool = False) -> KeyQueryResult:
        """query() for async code; a local standby's lag is looked up at the broker first."""
        plan, raw_key = self._plan(key, allow_standby)
        if plan.local is not None:
            if plan.standby and plan.worker is not None:
                await plan.worker.refresh_standby_lag(plan.task, self.spec.name)
            return self._local_result(plan, key, raw_key)
        from streams.runtime.web.forward import fetch_json

        failures = []
        async with _session() as session:
            for endpoint in plan.forward_to:
                status, body = await fetch_json(session, endpoint, self._path(raw_key), self._params(allow_standby))
                if status in (200, 404):
                    return self._remote_result(key, body)
                failures.append(f"{endpoint}: {body.get('error', status) if isinstance(body, dict) else status}")
        raise StoreUnavailableError(plan.unavailable or f"{self.spec.name}: task {plan.task}: {'; '.join(failures)}")

    def get(self, key: Any, default: Any = None, *, as_of: int | None = None) -> Any:
        """The key's value from whichever worker holds it, or default; windowed stores take a Windowed.

        A versioned table's history store (`<name>-versions`) also answers as_of a time, from the
        tasks of this process.
        """
        if as_of is not None:
            return self._local().get(key, default, as_of=as_of)
        if is_windowed(self.spec):
            return self._window_value(key, self.fetch(key.key, key.start, key.start), default)
        result = self.query(key)
        return result.value if result.found else default

    async def get_async(self, key: Any, default: Any = None) -> Any:
        if is_windowed(self.spec):
            return self._window_value(key, await self.fetch_async(key.key, key.start, key.start), default)
        result = await self.query_async(key)
        return result.value if result.found else default

    # -- a key's windows

    def fetch(self, key: Any, time_from: int | None = None, time_to: int | None = None) -> list[tuple[Windowed, Any]]:
        """(Windowed, aggregate) of the key's windows starting in [time_from, time_to], from its worker."""
        if not is_windowed(self.spec):
            raise TypeError(f"store {self.spec.name!r} is not windowed: use get(key)")
        plan, raw_key = self._plan(key, False)
        if plan.local is not None:
            return WindowStoreView(self.spec, [plan.local]).fetch(key, time_from, time_to)
        params = self._params(False, time_from, time_to)
        failures = []
        for endpoint in plan.forward_to:
            status, body = _get_sync(endpoint, self._path(raw_key), params)
            if status == 200:
                return self._windows(body)
            failures.append(f"{endpoint}: {status}")
        raise StoreUnavailableError(plan.unavailable or f"{self.spec.name}: task {plan.task}: {'; '.join(failures)}")

    async def fetch_async(self, key: Any, time_from: int | None = None,
                          time_to: int | None = None) -> list[tuple[Windowed, Any]]:
        plan, raw_key = self._plan(key, False)
        if plan.local is not None:
            return WindowStoreView(self.spec, [plan.local]).fetch(key, time_from, time_to)
        params = self._params(False, time_from, time_to)
        from streams.runtime.web.forward import fetch_json

        failures = []
        async with _session() as session:
            for endpoint in plan.forward_to:
                status, body = await fetch_json(session, endpoint, self._path(raw_key), params)
                if status == 200:
                    return self._windows(body)
                failures.append(f"{endpoint}: {status}")
        raise StoreUnavailableError(plan.unavailable or f"{self.spec.name}: task {plan.task}: {'; '.join(failures)}")

    # -- this process's share

    def _local(self) -> Any:
        workers = self._directory().workers
        if self.spec.kind == GLOBAL_KIND:
            return store_view(self.spec, [workers[0].global_tables.stores[self.spec.name]])
        name = self.spec.name
        return store_view(self.spec, [t.stores[name] for w in workers for t in w.tasks.values() if name in t.stores])

    def items(self) -> Iterator[tuple[Any, Any]]:
        """Entries of the tasks running in this process."""
        return self._local().items()

    def fetch_all(self, time_from: int | None = None, time_to: int | None = None) -> list[tuple[Windowed, Any]]:
        """Windows of every key held in this process, starting in [time_from, time_to]."""
        return self._local().fetch_all(time_from, time_to)

    def __len__(self) -> int:
        return len(self._local())

    def __getattr__(self, name: str) -> Any:
        """Other reads of the store's own view (a versioned table's versions(), ...), over this process's tasks."""
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._local(), name)

    # -- helpers

    def _plan(self, key: Any, allow_standby: bool) -> tuple[Plan, bytes]:
        raw_key = self.spec.key_serde.serialize(key)
        plan = self._directory().plan_key(self.spec, raw_key, allow_standby, forwarded=False)
        if plan.local is None and not plan.forward_to:
            raise StoreUnavailableError(f"{self.spec.name}: {plan.unavailable}")
        return plan, raw_key

    def _local_result(self, plan: Plan, key: Any, raw_key: bytes) -> KeyQueryResult:
        raw = read_value(self.spec, plan.local, raw_key)
        worker = plan.worker
        return KeyQueryResult(self.spec.name, key, raw is not None,
                              None if raw is None else self.spec.value_serde.deserialize(raw), plan.task,
                              worker.endpoint if worker is not None else None, plan.standby,
                              worker.standby_lag(plan.task, self.spec.name) if plan.standby and worker else None)

    def _remote_result(self, key: Any, body: dict[str, Any]) -> KeyQueryResult:
        raw = body.get("value_b64")
        value = None if raw is None else self.spec.value_serde.deserialize(unb64(raw))
        return KeyQueryResult(self.spec.name, key, bool(body.get("found")), value, body.get("task"),
                              body.get("served_by"), bool(body.get("standby")), body.get("lag"))

    def _windows(self, body: dict[str, Any]) -> list[tuple[Windowed, Any]]:
        deserialize_key, deserialize = self.spec.key_serde.deserialize, self.spec.value_serde.deserialize
        return [(Windowed(deserialize_key(unb64(w["key_b64"])), w["start"], w["end"]),
                 deserialize(unb64(w["value_b64"]))) for w in body["windows"]]

    @staticmethod
    def _window_value(windowed: Windowed, found: list[tuple[Windowed, Any]], default: Any) -> Any:
        return next((value for w, value in found if w == windowed), default)

    def _path(self, raw_key: bytes) -> str:
        return f"/stores/{quote(self.spec.name, safe='')}/{b64(raw_key)}"

    @staticmethod
    def _params(allow_standby: bool, time_from: int | None = None, time_to: int | None = None) -> dict[str, str]:
        params = {"encoding": "base64"}
        if allow_standby:
            params["standby"] = "true"
        if time_from is not None:
            params["from"] = str(time_from)
        if time_to is not None:
            params["to"] = str(time_to)
        return params


def _get_sync(endpoint: str, path: str, params: dict[str, str]) -> tuple[int, Any]:
    request = urllib.request.Request(f"http://{endpoint}{path}?{urlencode(params)}", headers={FORWARDED_HEADER: "1"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        try:
            return error.code, json.loads(error.read())
        except ValueError:
            return error.code, {}
    except (OSError, ValueError) as error:
        return 0, {"error": f"did not answer ({error})"}


def _session() -> Any:
    """An aiohttp client session; aiohttp is imported only by async queries that forward (it is slow to import)."""
    import aiohttp

    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S))
