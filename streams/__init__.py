"""streams: stream processing for Python on Apache Kafka."""

from streams.app import App
from streams.dsl import GroupedStream, Stream
from streams.errors import ProcessingError, StreamsError, TopologyError
from streams.processor import Processor, ProcessorContext
from streams.record import Record
from streams.serdes import Serde

__all__ = [
    "App",
    "GroupedStream",
    "ProcessingError",
    "Processor",
    "ProcessorContext",
    "Record",
    "Serde",
    "Stream",
    "StreamsError",
    "TopologyError",
]
