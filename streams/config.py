"""StreamsConfig: every setting of an application, validated once, when it is built.

App builds one from its arguments, the environment and the defaults; the
worker, replay, the global-table loader and the TestDriver receive it and never
the App.  One precedence rule holds for every setting: the value decided
latest wins, so

    defaults  <  App(...) arguments  <  STREAMS_<SETTING> environment  <  command-line flags

Code carries the development values; the environment of a deployment (or the
`streams worker` command line) has the last word.  A bad value is a ValueError
that names the setting and what it accepts.
"""

from __future__ import annotations

import os
import re
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

GUARANTEES = ("at_least_once", "exactly_once_v2", "exactly_once")
ON_ERROR = ("dlq", "skip", "fail")
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "GSSAPI", "OAUTHBEARER")
RECORDING_LEVELS = ("off", "info", "debug")
DEFAULT_BROKERS = "127.0.0.1:9092"
APP_ID = re.compile(r"[A-Za-z0-9._-]+")
_HOST = re.compile(r"[A-Za-z0-9_.:-]+")
_HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


@dataclass(frozen=True)
class Brokers:
    """Where the application's topics live, parsed from the brokers setting by its scheme.

    kafka: bootstrap servers (bare "host:port,host:port" or "kafka://host:port,...");
    memory: the in-process broker memory://NAME; local: the SQLite-backed local://PATH.
    """

    scheme: str
    servers: tuple[str, ...] = ()
    location: str = ""

    @classmethod
    def parse(cls, text: str) -> Brokers:
        text = text.strip()
        hint = "use host:port[,host:port], kafka://host:port, memory://[NAME] or local://PATH"
        scheme, sep, rest = text.partition("://")
        if not sep:
            if ":/" in text or text.startswith(("memory:", "local:", "kafka:")):
                raise ValueError(f"brokers: {text!r} is not a broker URL; {hint}")
            scheme, rest = "kafka", text
        if scheme == "memory":
            return cls("memory", location=rest)
        if scheme == "local":
            if not rest:
                raise ValueError(f"brokers: local:// needs a directory, e.g. local://.streams-broker; {hint}")
            return cls("local", location=rest)
        if scheme != "kafka":
            raise ValueError(f"brokers: unknown scheme {scheme + '://'!r} in {text!r}; {hint}")
        servers = tuple(part.strip() for part in rest.split(",") if part.strip())
        if not servers:
            raise ValueError(f"brokers: no bootstrap servers in {text!r}; {hint}")
        for server in servers:
            match = _HOST_PORT.match(server)
            if not match or not 0 < int(match.group(2)) < 65536:
                raise ValueError(f"brokers: {server!r} is not host:port with a port from 1 to 65535; {hint}")
        return cls("kafka", servers=servers)

    @property
    def embedded(self) -> bool:
        return self.scheme in ("memory", "local")

    @property
    def url(self) -> str:
        """What the transport is opened with: a memory:// or local:// URL, or the bootstrap servers."""
        return ",".join(self.servers) if self.scheme == "kafka" else f"{self.scheme}://{self.location}"

    def __str__(self) -> str:
        return self.url


DEFAULT_CACHE_MAX_BYTES = 0
"""The record cache is opt-in: every update reaches downstream unless a budget is set (docs/state.md, "Record cache").

Kafka Streams caches 10 MiB by default; here the examples, agents and tests that read
each update keep working as written, and a throughput-minded app sets a budget.
"""


@dataclass(frozen=True)
class StreamsConfig:
    """The settings of one application; see docs/configuration.md for each one and its environment variable."""

    app_id: str
    brokers: Brokers = field(default_factory=lambda: Brokers.parse(DEFAULT_BROKERS))
    processing_guarantee: str = "at_least_once"
    state_dir: Path = Path(".state")
    commit_interval: float | None = None
    on_error: str = "dlq"
    num_standby_replicas: int = 0
    poll_max_records: int = 10_000
    max_task_idle: float = 0.5
    cache_max_bytes: int = DEFAULT_CACHE_MAX_BYTES
    max_future_skew: float = 86_400.0
    producer_config: Mapping[str, Any] = field(default_factory=dict)
    consumer_config: Mapping[str, Any] = field(default_factory=dict)
    security_protocol: str = "PLAINTEXT"
    ssl_context: ssl.SSLContext | None = None
    sasl_mechanism: str | None = None
    sasl_plain_username: str | None = None
    sasl_plain_password: str | None = field(default=None, repr=False)
    web_port: int | None = None
    web_host: str = "127.0.0.1"
    web_advertised_host: str | None = None
    metrics_recording_level: str = "info"
    gc_young_threshold: int = 50_000

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if not isinstance(self.app_id, str) or not APP_ID.fullmatch(self.app_id) or self.app_id in (".", ".."):
            raise ValueError(f"app_id: {self.app_id!r} must match [A-Za-z0-9._-]+ and not be '.' or '..'; "
                             "it names the consumer group, internal topics and the state folder")
        if isinstance(self.brokers, str):
            set_(self, "brokers", Brokers.parse(self.brokers))
        _choice("processing_guarantee", self.processing_guarantee, GUARANTEES)
        _choice("on_error", self.on_error, ON_ERROR)
        _choice("security_protocol", self.security_protocol, SECURITY_PROTOCOLS)
        if self.sasl_mechanism is not None:
            _choice("sasl_mechanism", self.sasl_mechanism, SASL_MECHANISMS)
        if self.security_protocol.startswith("SASL_") and self.sasl_mechanism is None:
            raise ValueError(f"sasl_mechanism: security_protocol {self.security_protocol} needs one of "
                             f"{', '.join(SASL_MECHANISMS)}")
        if self.sasl_mechanism == "PLAIN" and not (self.sasl_plain_username and self.sasl_plain_password):
            raise ValueError("sasl_plain_username: SASL PLAIN needs sasl_plain_username and sasl_plain_password")
        if self.ssl_context is not None and not isinstance(self.ssl_context, ssl.SSLContext):
            raise ValueError(f"ssl_context: expected an ssl.SSLContext, got {type(self.ssl_context).__name__}")
        set_(self, "state_dir", Path(self.state_dir))
        if str(self.state_dir) == "":
            raise ValueError("state_dir: must name a folder")
        interval = self.commit_interval
        if interval is None:
            interval = 0.1 if self.exactly_once else 1.0
        set_(self, "commit_interval", _number("commit_interval", interval, low=0, strict=True))
        set_(self, "max_task_idle", _number("max_task_idle", self.max_task_idle, low=0))
        skew = _number("max_future_skew", self.max_future_skew, low=0, strict=True)
        if skew == float("inf"):
            raise ValueError("max_future_skew: must be a finite number of seconds, got inf")
        set_(self, "max_future_skew", skew)
        _integer("num_standby_replicas", self.num_standby_replicas, low=0)
        _integer("poll_max_records", self.poll_max_records, low=1)
        _integer("cache_max_bytes", self.cache_max_bytes, low=0)
        _integer("gc_young_threshold", self.gc_young_threshold, low=0)
        for name in ("producer_config", "consumer_config"):
            value = getattr(self, name)
            if not isinstance(value, Mapping):
                raise ValueError(f"{name}: expected a mapping of client settings, got {type(value).__name__}")
            set_(self, name, dict(value))
        if self.web_port is not None:
            _integer("web_port", self.web_port, low=0)
            if self.web_port > 65535:
                raise ValueError(f"web_port: must be at most 65535 (0 picks a free port), got {self.web_port!r}")
        for name in ("web_host", "web_advertised_host"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not _HOST.fullmatch(value)):
                raise ValueError(f"{name}: expected a host name or IP address, got {value!r}")
        _choice("metrics_recording_level", self.metrics_recording_level, RECORDING_LEVELS)

    # -- derived values

    @property
    def exactly_once(self) -> bool:
        return self.processing_guarantee != "at_least_once"

    @property
    def producer_per_task(self) -> bool:
        """exactly_once (for brokers before 2.5): each task has its own transactional producer."""
        return self.processing_guarantee == "exactly_once"

    @property
    def dlq_topic(self) -> str:
        return f"{self.app_id}-dlq"

    @property
    def advertised_host(self) -> str:
        """The host that other workers and users reach this worker's web server at (Kafka Streams'
        application.server, less the port, which is known once the server is bound).

        It defaults to web_host, or to this machine's name when web_host is a wildcard address
        that nobody could connect to.
        """
        host = self.web_advertised_host or self.web_host
        if host in ("0.0.0.0", "::"):
            host = socket.gethostname()
        return f"[{host}]" if ":" in host else host

    def client_config(self) -> dict[str, Any]:
        """Connection and security settings that every Kafka client gets, the admin client included."""
        config: dict[str, Any] = {"security_protocol": self.security_protocol}
        for name in ("ssl_context", "sasl_mechanism", "sasl_plain_username", "sasl_plain_password"):
            value = getattr(self, name)
            if value is not None:
                config[name] = value
        return config

    def state_path(self, *parts: str) -> Path:
        """A path under this application's state folder (state_dir/app_id/...), and never outside it.

        Every store, lock and wipe goes through here, so no setting or task name
        can make the framework write or delete outside state_dir.
        """
        home = self.state_dir.resolve() / self.app_id
        path = home.joinpath(*parts).resolve()
        if path != home and home not in path.parents:
            raise ValueError(f"state_dir: {path} is outside the application's state folder {home}")
        return path

    # -- building

    @classmethod
    def build(cls, app_id: str, settings: Mapping[str, Any] | None = None,
              environ: Mapping[str, str] | None = None) -> StreamsConfig:
        """Defaults, overridden by `settings` (App's arguments; None means not given), then by STREAMS_* variables."""
        known = {f.name for f in fields(cls)} - {"app_id"}
        values = {k: v for k, v in (settings or {}).items() if v is not None}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{unknown[0]}: not a setting; settings are {', '.join(sorted(known))}")
        environ = os.environ if environ is None else environ
        for name in known:
            raw = environ.get(f"STREAMS_{name.upper()}")
            if raw is not None and raw.strip() != "" and name in ENV_PARSERS:
                values[name] = ENV_PARSERS[name](name, raw.strip())
        return cls(app_id, **values)

    def with_overrides(self, **settings: Any) -> StreamsConfig:
        """The same settings with some replaced (command-line flags), validated again."""
        return replace(self, **{k: v for k, v in settings.items() if v is not None})


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}: {value!r} is not one of {', '.join(allowed)}")


def _number(name: str, value: Any, low: float, strict: bool = False) -> float:
    try:
        number = value.total_seconds() if isinstance(value, timedelta) else float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected seconds (a number or timedelta), got {value!r}") from None
    if number < low or (strict and number == low) or number != number:
        bound = f"greater than {low:g}" if strict else f"at least {low:g}"
        raise ValueError(f"{name}: must be {bound} seconds, got {value!r}")
    return number


def _integer(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name}: must be a whole number of at least {low}, got {value!r}")


def _env_int(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name}: STREAMS_{name.upper()}={raw!r} is not a whole number") from None


def _env_float(name: str, raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name}: STREAMS_{name.upper()}={raw!r} is not a number of seconds") from None


def _env_str(name: str, raw: str) -> str:
    return raw


ENV_PARSERS = {
    "brokers": _env_str,
    "processing_guarantee": _env_str,
    "state_dir": _env_str,
    "commit_interval": _env_float,
    "on_error": _env_str,
    "num_standby_replicas": _env_int,
    "poll_max_records": _env_int,
    "max_task_idle": _env_float,
    "cache_max_bytes": _env_int,
    "max_future_skew": _env_float,
    "security_protocol": _env_str,
    "sasl_mechanism": _env_str,
    "sasl_plain_username": _env_str,
    "sasl_plain_password": _env_str,
    "web_port": _env_int,
    "web_host": _env_str,
    "web_advertised_host": _env_str,
    "metrics_recording_level": _env_str,
    "gc_young_threshold": _env_int,
}
