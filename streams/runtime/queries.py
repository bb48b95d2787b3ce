"""Interactive queries across workers: which worker holds a key, and its answer from there.

Every worker learns from the group assignment which endpoint (the host:port of
a worker's web server) runs each task, active or standby
(streams/runtime/assignor.py).  A key's task follows from the key: its
partition is the default partitioner's over the serialized key, among the
partitions of the store's sub-topology, as when the key was written.

A query is answered by a task open in this process, or forwarded to the
endpoint that runs the task.  A task that is moving or restoring is open
nowhere, and then the query fails (StoreUnavailableError; HTTP 503 with
Retry-After) instead of answering from a copy that may be out of date.  Standby
copies answer only when the caller allows it, and their answer says how far
they lag behind their changelog.

This module decides and answers locally; the web server
(streams/runtime/web/stores.py) and the Python views (query_views.py) do the
forwarding, over aiohttp and urllib.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from streams.partitioner import partition_for
from streams.serdes import BytesSerde, FloatSerde, IntSerde, JsonSerde
from streams.state.global_store import GLOBAL_KIND
from streams.state.spec import StoreSpec
from streams.state.versioned import VERSIONED_KIND, VersionedStore
from streams.windows.definitions import Windowed
from streams.windows.query import WindowStoreView

if TYPE_CHECKING:
    from streams.runtime.worker import Worker

RETRY_AFTER_S = 1.0
FORWARDED_HEADER = "X-Streams-Forwarded"


@dataclass
class KeyQueryResult:
    """The answer to one key's query, and where it came from."""

    store: str
    key: Any
    found: bool
    value: Any = None
    task: str | None = None
    served_by: str | None = None  # endpoint of the worker that answered; None for this process without a server
    standby: bool = False
    lag: int | None = None  # for a standby: changelog records it has not applied yet


@dataclass
class Plan:
    """What to do with a key's query: answer here, forward, or give up with a reason."""

    task: str | None
    local: Any = None  # the open store that answers, active or standby
    worker: Worker | None = None
    standby: bool = False
    forward_to: list[str] = field(default_factory=list)
    unavailable: str | None = None


def is_windowed(spec: StoreSpec) -> bool:
    return "window" in spec.options


def decode_key_text(spec: StoreSpec, text: str) -> Any:
    """A key typed in a URL, read as the store's key serde expects it: numbers, JSON, else text."""
    serde = spec.key_serde
    if isinstance(serde, IntSerde):
        return int(text)
    if isinstance(serde, FloatSerde):
        return float(text)
    if isinstance(serde, BytesSerde):
        return text.encode()
    if isinstance(serde, JsonSerde):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            return text
    return text


def b64(data: bytes | None) -> str | None:
    return None if data is None else base64.urlsafe_b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text.encode())


class StoreDirectory:
    """Where the tasks of each store run, seen from the workers of one application in this process."""

    def __init__(self, workers: Sequence[Worker]) -> None:
        self.workers = [w for w in workers if w.plan is not None]

    def spec(self, name: str) -> StoreSpec | None:
        for worker in self.workers:
            spec = worker.topology.stores.get(name)
            if spec is not None:
                return spec
        return None

    def store_names(self) -> list[str]:
        return sorted({name for w in self.workers for name in w.topology.stores})

    def tasks_of(self, name: str) -> list[str]:
        """Every task id that holds a shard of the store (empty for global stores)."""
        if not self.workers:
            return []
        tasks = self.workers[0].plan.tasks
        return sorted(t for t, plan in tasks.items() if any(s.name == name for s in plan.subtopology.stores))

    def task_for_key(self, name: str, raw_key: bytes) -> str | None:
        tasks = self.tasks_of(name)
        if not tasks:
            return None
        sub = tasks[0].partition("_")[0]
        return f"{sub}_{partition_for(raw_key, len(tasks))}"

    def local_endpoints(self) -> set[str]:
        return {w.endpoint for w in self.workers if w.endpoint}

    def assignment_hosts(self) -> dict[str, Any]:
        """The newest endpoint map any worker here holds."""
        for worker in self.workers:
            assignment = worker.assignor.assignment if worker.assignor is not None else None
            if assignment is not None and assignment.hosts:
                return assignment.hosts
        return {}

    # -- point queries

    def plan_key(self, spec: StoreSpec, raw_key: bytes, allow_standby: bool, forwarded: bool) -> Plan:
        if spec.kind == GLOBAL_KIND:
            for worker in self.workers:
                if worker.global_tables is not None and spec.name in worker.global_tables.stores:
                    return Plan(None, local=worker.global_tables.stores[spec.name], worker=worker)
            return Plan(None, unavailable="the global table is not loaded yet")
        task_id = self.task_for_key(spec.name, raw_key)
        if task_id is None:
            return Plan(None, unavailable="no worker of this application runs here yet")
        for worker in self.workers:
            task = worker.tasks.get(task_id)
            if task is not None and spec.name in task.stores:
                return Plan(task_id, local=task.stores[spec.name], worker=worker)
        if allow_standby:
            for worker in self.workers:
                store = worker.standbys.stores.get(task_id, {}).get(spec.name) if worker.standbys else None
                if store is not None:
                    return Plan(task_id, local=store, worker=worker, standby=True)
        if forwarded:
            return Plan(task_id, unavailable=f"task {task_id} is not open on this worker (it is moving or restoring)")
        hosts = self.assignment_hosts()
        mine = self.local_endpoints()
        owner = next((e for e, h in hosts.items() if task_id in h.active), None)
        targets = [owner] if owner is not None and owner not in mine else []
        if allow_standby:
            targets += sorted(e for e, h in hosts.items() if task_id in h.standby and e not in mine and e != owner)
        if targets:
            return Plan(task_id, forward_to=targets)
        if owner is not None:
            return Plan(task_id, unavailable=f"task {task_id} is being restored on this worker")
        if hosts or any(w.rebalances.running for w in self.workers):
            return Plan(task_id, unavailable=f"task {task_id} has no owner right now (a rebalance is under way)")
        return Plan(task_id, unavailable=f"task {task_id} runs on a worker without a web server "
                                         "(set web_port on every worker to route queries)")

    def answer_key(self, spec: StoreSpec, plan: Plan, raw_key: bytes) -> dict[str, Any]:
        """The JSON body of a local answer; raw bytes ride along for forwarded (base64) callers."""
        worker = plan.worker
        body: dict[str, Any] = {"store": spec.name, "key": spec.key_serde.deserialize(raw_key), "task": plan.task,
                                "served_by": worker.endpoint if worker is not None else None,
                                "standby": plan.standby}
        if plan.standby and worker is not None:
            body["lag"] = worker.standby_lag(plan.task, spec.name)
        raw_value = read_value(spec, plan.local, raw_key)
        body["found"] = raw_value is not None
        body["value"] = None if raw_value is None else spec.value_serde.deserialize(raw_value)
        body["value_b64"] = b64(raw_value)
        return body

    def answer_windows(self, spec: StoreSpec, plan: Plan, key: Any, time_from: int | None,
                       time_to: int | None) -> dict[str, Any]:
        worker = plan.worker
        view = WindowStoreView(spec, [plan.local])
        windows = view.fetch(key, time_from, time_to)
        body: dict[str, Any] = {"store": spec.name, "key": key, "task": plan.task,
                                "served_by": worker.endpoint if worker is not None else None,
                                "standby": plan.standby, "found": bool(windows),
                                "windows": [{**window_json(spec, w, v), "key_b64": b64(spec.key_serde.serialize(w.key)),
                                             "value_b64": b64(spec.value_serde.serialize(v))} for w, v in windows]}
        if plan.standby and worker is not None:
            body["lag"] = worker.standby_lag(plan.task, spec.name)
        return body

    # -- scans of this process's share

    def local_range(self, spec: StoreSpec, start: bytes | None, end: bytes | None,
                    limit: int) -> tuple[list[tuple[bytes, bytes]], list[str]]:
        """Entries in [start, end] of the active tasks open here (each task's first `limit`), and those tasks."""
        entries: list[tuple[bytes, bytes]] = []
        covered = []
        upper = None if end is None else end + b"\x00"
        for task_id, store in self._open_shards(spec):
            covered.append(task_id)
            for i, entry in enumerate(store.range(start, upper)):
                if i >= limit:
                    break
                entries.append(entry)
        entries.sort(key=lambda e: e[0])
        return entries, covered

    def local_windows(self, spec: StoreSpec, time_from: int | None, time_to: int | None,
                      limit: int) -> tuple[list[tuple[Windowed, Any]], list[str]]:
        found: list[tuple[Windowed, Any]] = []
        covered = []
        for task_id, store in self._open_shards(spec):
            covered.append(task_id)
            found.extend(WindowStoreView(spec, [store]).fetch_all(time_from, time_to)[:limit])
        found.sort(key=lambda item: (item[0].start, item[0].end))
        return found, covered

    def _open_shards(self, spec: StoreSpec) -> list[tuple[str, Any]]:
        if spec.kind == GLOBAL_KIND:
            for worker in self.workers:
                if worker.global_tables is not None and spec.name in worker.global_tables.stores:
                    return [("global", worker.global_tables.stores[spec.name])]
            return []
        return sorted((task_id, task.stores[spec.name]) for w in self.workers for task_id, task in w.tasks.items()
                      if spec.name in task.stores)


def read_value(spec: StoreSpec, store: Any, raw_key: bytes) -> bytes | None:
    """A key's serialized value in one task's store; a versioned table's history store answers its latest."""
    if spec.kind == VERSIONED_KIND:
        return VersionedStore.of(store, spec.options["history_retention"]).get(raw_key)
    return store.get(raw_key)


def window_json(spec: StoreSpec, window: Windowed, value: Any) -> dict[str, Any]:
    return {"key": window.key, "start": window.start, "end": window.end, "value": value}
