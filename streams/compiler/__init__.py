"""The compiler: the logical graph, its split into sub-topologies and tasks, and describe()."""
