"""A task: one sub-topology over one partition, run synchronously a batch at a time."""
