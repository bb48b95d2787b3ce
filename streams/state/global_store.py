"""Global stores: every partition of a topic, held in full by every worker.

Each worker (and the TestDriver) keeps one GlobalStore per global table, fed
from the topic itself, which is the table's changelog; stream records join it by
any key they can compute, so neither side needs co-partitioning.

The store is one local store at <state_dir>/<app-id>/global/<name> with two key
spaces: b"d" + key for the rows and b"o" + partition for the next offset to
read from each partition.  Rows and offsets are written in one batch, so after
a crash the store resumes reading exactly where its data ends.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from typing import Any

from streams.state.restore import readable_rows
from streams.state.spec import StoreSpec
from streams.state.store import prefix_end
from streams.transport.base import RawRecord

GLOBAL_KIND = "global"
ROWS, OFFSETS = b"d", b"o"
_PARTITION = struct.Struct(">I")
_OFFSET = struct.Struct(">q")


def global_specs(stores: Iterable[StoreSpec]) -> list[StoreSpec]:
    return [s for s in stores if s.kind == GLOBAL_KIND]


class GlobalStore:
    """The rows of every partition of a global table's topic, with the offset reached in each."""

    def __init__(self, spec: StoreSpec, local: Any) -> None:
        self.spec = spec
        self.name = spec.name
        self.topic: str = spec.options["topic"]
        self.local = local

    # -- reads, for joins and queries

    def get(self, key: bytes) -> bytes | None:
        return self.local.get(ROWS + key)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        return self.range()

    def range(self, start: bytes | None = None, end: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Rows with start <= key < end, by key."""
        high = prefix_end(ROWS) if end is None else ROWS + end
        for key, value in self.local.range(ROWS + (start or b""), high):
            yield key[len(ROWS):], value

    def approximate_count(self) -> int:
        return max(0, self.local.approximate_count() - len(self.offsets()))

    # -- writes, from the topic

    def offsets(self) -> dict[int, int]:
        """The next offset to read, per partition read so far."""
        return {_PARTITION.unpack_from(key, 1)[0]: _OFFSET.unpack(value)[0]
                for key, value in self.local.range(OFFSETS, prefix_end(OFFSETS))}

    def apply(self, partition: int, records: list[RawRecord]) -> int:
        """Upsert rows (a None value deletes), and move the partition's offset past them, in one batch.

        A row the table's serdes cannot read stays out of the store (logged), as it
        would from a table's: a lookup then finds the key's earlier row, if any.
        """
        if not records:
            return 0
        last = records[-1].offset
        changes: list[tuple[bytes, bytes | None]] = [
            (ROWS + r.key, r.value) for r in readable_rows(records, self.spec.key_serde, self.spec.value_serde)
            if r.key is not None]
        changes.append((OFFSETS + _PARTITION.pack(partition), _OFFSET.pack(last + 1)))
        self.local.write_batch(changes)
        return len(changes) - 1

    def wipe(self) -> None:
        self.local.wipe()

    def close(self) -> None:
        self.local.close()


class TaskGlobalStore:
    """A global store as one task sees it: readable, never committed, changelogged or closed by the task.

    The worker (or TestDriver) owns the GlobalStore; tasks list it among their
    stores only so that processors find it with context.get_store(name).
    """

    changelog = None

    def __init__(self, store: GlobalStore) -> None:
        self.store = store
        self.name = store.name
        self.spec = store.spec
        self.get = store.get

    def changelog_records(self, partition: int) -> list:
        return []

    def commit(self, written: Any, consumed: Any) -> None:
        return None

    def discard(self) -> None:
        return None

    def close(self) -> None:
        return None
