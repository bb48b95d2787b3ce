"""A small synchronous client of the Confluent-compatible schema registry API.

Synchronous on purpose: serdes are synchronous code over batches, and they ask
the registry only the first time they meet a subject or a schema id; after that
every answer comes from this client's caches, so no record ever waits on the
network.  Failed calls are remembered for `retry_interval` seconds, so a registry
that is down costs one timeout per interval, not one per record.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

from streams.schema_registry.errors import (
    IncompatibleSchemaError,
    InvalidSchemaError,
    RegistryUnavailableError,
    SchemaNotFoundError,
    SchemaRegistryError,
)

T = TypeVar("T")
CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
DEFAULT_URL = "http://127.0.0.1:8081/apis/ccompat/v7"  # where scripts/schema-registry serves by default
SCHEMA_TYPES = ("AVRO", "JSON", "PROTOBUF")


class SchemaReference(NamedTuple):
    """A schema another one imports: by its name there (a Protobuf import path), as a version of a subject."""

    name: str
    subject: str
    version: int


class RegisteredSchema(NamedTuple):
    """A schema as the registry holds it: its text, type ("AVRO", "JSON" or "PROTOBUF") and references."""

    text: str
    schema_type: str
    references: tuple[SchemaReference, ...] = ()


class SchemaRegistry:
    """Client of one registry at `url`, the base of its Confluent API (e.g. http://host:8081).

    url: without one, the STREAMS_SCHEMA_REGISTRY environment variable, else the development
        registry of scripts/schema-registry (http://127.0.0.1:8081/apis/ccompat/v7).
    timeout: seconds to wait for one answer.
    retry_interval: seconds during which a failed call fails again without asking.
    """

    def __init__(self, url: str | None = None, *, timeout: float = 5.0, retry_interval: float = 5.0) -> None:
        url = url or os.environ.get("STREAMS_SCHEMA_REGISTRY") or DEFAULT_URL
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"schema registry url must be http://host:port[/path], got {url!r}")
        if timeout <= 0:
            raise ValueError(f"schema registry timeout must be positive, got {timeout!r}")
        if retry_interval < 0:
            raise ValueError(f"schema registry retry_interval must not be negative, got {retry_interval!r}")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.retry_interval = retry_interval
        self._ids: dict[tuple[str, RegisteredSchema], int] = {}
        self._found: dict[tuple[str, RegisteredSchema], tuple[int, int]] = {}
        self._subject_versions: dict[tuple[str, int], RegisteredSchema] = {}
        self._schemas: dict[int, RegisteredSchema] = {}
        self._latest: dict[str, tuple[int, RegisteredSchema]] = {}
        self._failures: dict[tuple[str, Any], tuple[float, SchemaRegistryError]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SchemaRegistry({self.url!r})"

    # -- the calls serdes make, each cached

    def check(self) -> None:
        """Raise RegistryUnavailableError unless the registry answers."""
        try:
            self._request("GET", "/config", what="its configuration")
        except RegistryUnavailableError as exc:
            raise RegistryUnavailableError(f"{exc}; start the registry or correct its URL") from None

    def register(self, subject: str, schema: RegisteredSchema) -> int:
        """The id of `schema` under `subject`, registering it as a new version if needed."""
        key = (subject, schema)
        return self._cached("register", self._ids, key, lambda: int(self._request(
            "POST", f"/subjects/{_quote(subject)}/versions", _body(schema),
            what=f"a new version of subject {subject!r}")["id"]))

    def lookup(self, subject: str, schema: RegisteredSchema) -> int:
        """The id of `schema` if it is a version of `subject`; SchemaNotFoundError if not."""
        return self._find(subject, schema)[0]

    def version(self, subject: str, schema: RegisteredSchema) -> int:
        """The version number of `schema` in `subject`; SchemaNotFoundError if it is not one."""
        return self._find(subject, schema)[1]

    def _find(self, subject: str, schema: RegisteredSchema) -> tuple[int, int]:
        """(id, version) of `schema` among the versions of `subject`: one request answers both."""

        def fetch() -> tuple[int, int]:
            answer = self._request("POST", f"/subjects/{_quote(subject)}", _body(schema),
                                   what=f"the schema among the versions of subject {subject!r}")
            return int(answer["id"]), int(answer["version"])

        return self._cached("find", self._found, (subject, schema), fetch)

    def subject_version(self, subject: str, version: int) -> RegisteredSchema:
        """Version `version` of `subject`: how a reference is read."""
        return self._cached("subject_version", self._subject_versions, (subject, version), lambda: _schema_of(
            self._request("GET", f"/subjects/{_quote(subject)}/versions/{int(version)}",
                          what=f"version {version} of subject {subject!r}")))

    def latest(self, subject: str) -> tuple[int, RegisteredSchema]:
        """The id and schema of the latest version of `subject`, as it was when first asked."""

        def fetch() -> tuple[int, RegisteredSchema]:
            answer = self._request("GET", f"/subjects/{_quote(subject)}/versions/latest",
                                   what=f"the latest version of subject {subject!r}")
            return int(answer["id"]), _schema_of(answer)

        return self._cached("latest", self._latest, subject, fetch)

    def schema(self, schema_id: int) -> RegisteredSchema:
        """The schema with this id."""
        return self._cached("schema", self._schemas, schema_id, lambda: _schema_of(self._request(
            "GET", f"/schemas/ids/{int(schema_id)}", what=f"schema id {schema_id}")))

    # -- plumbing

    def _cached(self, call: str, cache: dict, key: Any, fetch: Callable[[], T]) -> T:
        found = cache.get(key)
        if found is not None:
            return found
        with self._lock:
            found = cache.get(key)
            if found is not None:
                return found
            failure_key = (call, key)
            failed = self._failures.get(failure_key)
            if failed is not None and time.monotonic() < failed[0]:
                raise type(failed[1])(*failed[1].args)
            try:
                value = fetch()
            except SchemaRegistryError as exc:
                self._failures[failure_key] = (time.monotonic() + self.retry_interval, exc)
                raise
            self._failures.pop(failure_key, None)
            cache[key] = value
            return value

    def _request(self, method: str, path: str, body: dict | None = None, *, what: str) -> dict:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method,
                                         headers={"Content-Type": CONTENT_TYPE, "Accept": CONTENT_TYPE})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise _http_error(self.url, exc, what) from None
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RegistryUnavailableError(
                f"schema registry at {self.url} is not reachable ({reason}) while asking for {what}") from None


def _quote(subject: str) -> str:
    return urllib.parse.quote(subject, safe="")


def _body(schema: RegisteredSchema) -> dict:
    if schema.schema_type not in SCHEMA_TYPES:
        raise ValueError(f"schema_type must be one of {SCHEMA_TYPES}, got {schema.schema_type!r}")
    body: dict[str, Any] = {"schema": schema.text}
    if schema.schema_type != "AVRO":  # the API's default type, which Confluent's registry leaves out
        body["schemaType"] = schema.schema_type
    if schema.references:
        body["references"] = [ref._asdict() for ref in schema.references]
    return body


def _schema_of(answer: dict) -> RegisteredSchema:
    references = tuple(SchemaReference(ref["name"], ref["subject"], int(ref["version"]))
                       for ref in answer.get("references") or ())
    return RegisteredSchema(answer["schema"], answer.get("schemaType") or "AVRO", references)


def _http_error(url: str, exc: urllib.error.HTTPError, what: str) -> SchemaRegistryError:
    try:
        detail = json.loads(exc.read())
        message, code = detail.get("message", ""), int(detail.get("error_code", exc.code))
    except (OSError, ValueError, AttributeError):
        message, code = exc.reason, exc.code
    text = f"schema registry at {url} refused {what}: {message} (HTTP {exc.code}, error code {code})"
    if exc.code == 409:
        return IncompatibleSchemaError(f"{text}; the schema is incompatible with the subject's earlier versions "
                                       "under the registry's compatibility rule")
    if exc.code == 404:
        return SchemaNotFoundError(f"schema registry at {url} does not know {what}: {message} "
                                   f"(HTTP 404, error code {code})")
    if exc.code == 422:
        return InvalidSchemaError(text)
    if exc.code >= 500:
        return RegistryUnavailableError(text)
    return SchemaRegistryError(text)
