"""Joins: stream-table, stream-global table, table-table and windowed stream-stream (see docs/joins.md)."""

from streams.joins.global_table import GlobalTable
from streams.joins.windows import JoinWindows

__all__ = ["GlobalTable", "JoinWindows"]
