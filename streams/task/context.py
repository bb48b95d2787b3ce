"""Which task is at work now, for the log records it causes (streams/runtime/logcontext.py shows it)."""

from __future__ import annotations

from contextvars import ContextVar

TASK: ContextVar[str | None] = ContextVar("streams_task", default=None)
