"""Interactive queries: read a store's current contents inside a running worker.

The view covers the tasks this worker runs now; keys owned by other workers are
not visible here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from streams.state.spec import StoreSpec


class StoreView:
    def __init__(self, spec: StoreSpec, stores: Sequence[Any]) -> None:
        self.spec = spec
        self._stores = list(stores)

    def get(self, key: Any, default: Any = None) -> Any:
        raw_key = self.spec.key_serde.serialize(key)
        for store in self._stores:
            value = store.get(raw_key)
            if value is not None:
                return self.spec.value_serde.deserialize(value)
        return default

    def items(self) -> Iterator[tuple[Any, Any]]:
        deserialize_key, deserialize_value = self.spec.key_serde.deserialize, self.spec.value_serde.deserialize
        for store in self._stores:
            for key, value in store.items():
                yield deserialize_key(key), deserialize_value(value)

    def __len__(self) -> int:
        return sum(store.approximate_count() for store in self._stores)


def store_view(spec: StoreSpec, stores: Sequence[Any]) -> Any:
    """The query view for a store: a spec may name its own view class (windowed stores offer fetch)."""
    return spec.options.get("view", StoreView)(spec, stores)
