"""Processors: the synchronous operators that a task runs over batches of records."""
