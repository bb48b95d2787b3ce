"""Join processors: stream-table, table-table and windowed stream-stream (see docs/joins.md)."""
