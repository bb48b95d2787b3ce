"""Interactive queries over a windowed store: the windows of one key, or of all keys, by start time."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from streams.state.spec import StoreSpec
from streams.state.store import prefix_end
from streams.windows.definitions import WindowDefinition, Windowed
from streams.windows.store import WINDOWS, WindowStore, encode_time, key_prefix, split_window_key


class WindowStoreView:
    """The windows held by this process's tasks; windows owned by other workers are not visible here.

    Time and sliding windows are looked up by start with a range scan; a key's
    sessions are few, so they are scanned and filtered.
    """

    def __init__(self, spec: StoreSpec, stores: Sequence[Any]) -> None:
        self.spec = spec
        self.window: WindowDefinition = spec.options["window"]
        self._stores = [WindowStore(store) for store in stores]
        self._sessions = self.window.kind == "session"

    def fetch(self, key: Any, time_from: int | None = None, time_to: int | None = None) -> list[tuple[Windowed, Any]]:
        """(Windowed, aggregate) of `key`'s windows starting in [time_from, time_to], by start."""
        prefix = key_prefix(self.spec.key_serde.serialize(key))
        found = [item for store in self._stores for item in self._scan(store, prefix, time_from, time_to, key)]
        found.sort(key=lambda item: (item[0].start, item[0].end))
        return found

    def fetch_all(self, time_from: int | None = None, time_to: int | None = None) -> list[tuple[Windowed, Any]]:
        """(Windowed, aggregate) of every key's windows starting in [time_from, time_to], by start."""
        found = [item for store in self._stores for item in self._scan(store, WINDOWS, time_from, time_to)]
        found.sort(key=lambda item: (item[0].start, item[0].end))
        return found

    def get(self, windowed: Windowed, default: Any = None) -> Any:
        """The aggregate of one window, or default."""
        prefix = key_prefix(self.spec.key_serde.serialize(windowed.key))
        if self._sessions:
            wkey = prefix + encode_time(windowed.end) + encode_time(windowed.start)
        else:
            wkey = prefix + encode_time(windowed.start)
        for store in self._stores:
            found = store.get(wkey)
            if found is not None:
                return self.spec.value_serde.deserialize(found[1])
        return default

    def items(self) -> Iterator[tuple[Windowed, Any]]:
        return iter(self.fetch_all())

    def __len__(self) -> int:
        return sum(1 for store in self._stores for _ in store.all_windows())

    def _scan(self, store: WindowStore, prefix: bytes, time_from: int | None, time_to: int | None,
              key: Any = None) -> Iterator[tuple[Windowed, Any]]:
        deserialize_key, deserialize = self.spec.key_serde.deserialize, self.spec.value_serde.deserialize
        one_key = prefix != WINDOWS
        if one_key and not self._sessions and time_from is not None:
            rows = store.windows(prefix + encode_time(time_from),
                                 prefix + encode_time(time_to + 1) if time_to is not None else prefix_end(prefix))
        else:
            rows = store.all_windows(prefix)
        for wkey, _, raw in rows:
            key_bytes, first, second = split_window_key(wkey)
            start, end = (second, first) if self._sessions else (first, self.window.end_of(first))
            if (time_from is not None and start < time_from) or (time_to is not None and start > time_to):
                continue
            yield Windowed(key if one_key else deserialize_key(key_bytes), start, end), deserialize(raw)
