"""Event-time windows: the definitions users pass to the DSL, window results and their serde.

The processors that aggregate into windows live in streams.processors.windowed;
this package holds only what they and the DSL share: definitions, window stores
and the query view.
"""

from streams.windows.definitions import Duration, Hopping, Session, Sliding, Tumbling, WindowDefinition, Windowed
from streams.windows.join_windows import JoinWindows
from streams.windows.query import WindowStoreView
from streams.windows.serde import WindowedJsonSerde, WindowedSerde

__all__ = [
    "Duration",
    "Hopping",
    "JoinWindows",
    "Session",
    "Sliding",
    "Tumbling",
    "WindowDefinition",
    "WindowStoreView",
    "Windowed",
    "WindowedJsonSerde",
    "WindowedSerde",
]
