"""The imperative shell: runs compiled tasks on a consumer group."""
