"""Which application, worker and task a log line comes from, and the JSON log format.

The worker sets the app id and its name once; a task sets its id around its
work (streams/task/context.py), and the worker around a task's restore; a
filter copies them onto every log record, so both formats can show them.  Context variables follow asyncio tasks, so two
workers in one process each log their own ids.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TextIO

import orjson

from streams.task.context import TASK

APP_ID: ContextVar[str | None] = ContextVar("streams_app_id", default=None)
WORKER: ContextVar[str | None] = ContextVar("streams_worker", default=None)

PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_FORMATS = ("plain", "json")


class ContextFilter(logging.Filter):
    """Puts app_id, worker and task on each record (None outside a worker or a task)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.app_id = APP_ID.get()
        record.worker = WORKER.get()
        record.task = TASK.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, app_id, worker, task (and exception)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "app_id": getattr(record, "app_id", None),
            "worker": getattr(record, "worker", None),
            "task": getattr(record, "task", None),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: str = "INFO", log_format: str = "plain", stream: TextIO | None = None) -> None:
    """Log to stderr (or `stream`) in the plain or the JSON format, replacing earlier handlers."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log_format: {log_format!r} is not one of {', '.join(LOG_FORMATS)}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(PLAIN_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))
