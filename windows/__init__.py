"""Event-time windows: tumbling, hopping, sliding and session windows over grouped streams."""

from windows.definitions import Duration, Hopping, Session, Sliding, Tumbling, WindowDefinition, Windowed
from windows.dsl import WindowedStream, WindowedTable
from windows.query import WindowStoreView
from windows.serde import WindowedSerde

__all__ = [
    "Duration",
    "Hopping",
    "Session",
    "Sliding",
    "Tumbling",
    "WindowDefinition",
    "WindowStoreView",
    "Windowed",
    "WindowedSerde",
    "WindowedStream",
    "WindowedTable",
]
