"""Windowed aggregation processors: time windows, sliding windows and sessions."""
