"""streams: stream processing for Python on Apache Kafka.

The public API is what this package, streams.state, streams.windows and
streams.testing export in their __all__.  Every other module path is internal:
it may change without notice, and examples and docs never import it
(docs/architecture.md, enforced by tests/test_public_api.py).
"""

from streams.app import App
from streams.dsl.agent_table import AgentTable
from streams.dsl.global_table import GlobalTable
from streams.dsl.grouped_table import GroupedTable
from streams.dsl.stream import GroupedStream, Stream
from streams.dsl.suppress import Suppressed, until_time_limit, until_window_closes
from streams.dsl.table import Table
from streams.dsl.topic import Topic
from streams.dsl.windows import WindowedStream, WindowedTable
from streams.errors import (
    BufferFullError,
    ProcessingError,
    SerializationError,
    StoreUnavailableError,
    StreamsError,
    TopologyError,
    UnknownTopicError,
)
from streams.processors.api import Processor, ProcessorContext
from streams.record import Record
from streams.running import Run
from streams.schema_registry import (
    AvroSerde,
    IncompatibleSchemaError,
    JsonSchemaSerde,
    ProtobufSerde,
    RegistryUnavailableError,
    SchemaNotFoundError,
    SchemaRegistry,
    SchemaRegistryError,
    WireFormatError,
)
from streams.serdes import BytesSerde, FloatSerde, IntSerde, JsonSerde, Serde, StrSerde
from streams.testing import TestDriver
from streams.windows import (
    Hopping,
    JoinWindows,
    Session,
    Sliding,
    Tumbling,
    Windowed,
    WindowedJsonSerde,
    WindowedSerde,
)

__all__ = [
    "AgentTable",
    "App",
    "AvroSerde",
    "BufferFullError",
    "BytesSerde",
    "FloatSerde",
    "GlobalTable",
    "GroupedStream",
    "GroupedTable",
    "Hopping",
    "IncompatibleSchemaError",
    "IntSerde",
    "JoinWindows",
    "JsonSchemaSerde",
    "JsonSerde",
    "ProcessingError",
    "Processor",
    "ProcessorContext",
    "ProtobufSerde",
    "Record",
    "RegistryUnavailableError",
    "Run",
    "SchemaNotFoundError",
    "SchemaRegistry",
    "SchemaRegistryError",
    "Serde",
    "SerializationError",
    "Session",
    "Sliding",
    "StoreUnavailableError",
    "StrSerde",
    "Stream",
    "StreamsError",
    "Suppressed",
    "Table",
    "TestDriver",
    "Topic",
    "TopologyError",
    "Tumbling",
    "Windowed",
    "WindowedJsonSerde",
    "WindowedSerde",
    "WindowedStream",
    "WindowedTable",
    "UnknownTopicError",
    "WireFormatError",
    "until_time_limit",
    "until_window_closes",
]
