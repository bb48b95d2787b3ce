"""The DSL: thin builders that record the logical graph (streams, tables, windows, joins)."""
