"""A bytewise-sorted view of a dict's keys that is brought up to date only when read."""

from __future__ import annotations

from bisect import bisect_left, insort

# Up to this many pending changes are folded in one by one (binary search plus a
# list shift); beyond it one pass over the whole list is cheaper.
_FOLD_ONE_BY_ONE = 64


class SortedKeys:
    """Keys in sorted order for range reads over a dict that is written far more often than scanned.

    Writers report keys that appear in or vanish from their dict; those go into two
    sets in O(1) and are folded into the sorted list at the next range read, so a
    burst of writes between two scans costs at most one merge, not one list shift
    per write.
    """

    __slots__ = ("_keys", "_added", "_removed")

    def __init__(self) -> None:
        self._keys: list[bytes] = []
        self._added: set[bytes] = set()  # present keys not yet in _keys
        self._removed: set[bytes] = set()  # keys in _keys no longer present

    def add(self, key: bytes) -> None:
        """Record that key became present (it must not have been present)."""
        if key in self._removed:
            self._removed.discard(key)
        else:
            self._added.add(key)

    def remove(self, key: bytes) -> None:
        """Record that key stopped being present (it must have been present)."""
        if key in self._added:
            self._added.discard(key)
        else:
            self._removed.add(key)

    def clear(self) -> None:
        self._keys = []
        self._added.clear()
        self._removed.clear()

    def __len__(self) -> int:
        return len(self._keys) + len(self._added) - len(self._removed)

    def between(self, start: bytes | None, end: bytes | None) -> list[bytes]:
        """A copy of the present keys with start <= key < end, sorted; None bounds are open."""
        self._fold()
        keys = self._keys
        lo = 0 if start is None else bisect_left(keys, start)
        hi = len(keys) if end is None else bisect_left(keys, end)
        return keys[lo:hi] if lo < hi else []

    def _fold(self) -> None:
        removed = self._removed
        if removed:
            keys = self._keys
            if len(removed) <= _FOLD_ONE_BY_ONE:
                for key in removed:
                    del keys[bisect_left(keys, key)]
            else:
                self._keys = [key for key in keys if key not in removed]
            removed.clear()
        added = self._added
        if added:
            keys = self._keys
            if len(added) <= _FOLD_ONE_BY_ONE:
                for key in added:
                    insort(keys, key)
            else:
                # Two sorted runs back to back: the sort merges them in one pass.
                keys.extend(sorted(added))
                keys.sort()
            added.clear()
