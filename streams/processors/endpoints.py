"""Where records enter and leave a task: deserializing sources and serializing sinks."""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from typing import Any

from streams.errors import FutureTimestampError
from streams.processors.api import Processor
from streams.record import Record
from streams.serdes import Serde
from streams.transport.base import RawRecord

TimestampExtractor = Callable[[Any, Any, RawRecord], int]
TopicChooser = Callable[[Any, Any], str]
_timestamp = attrgetter("timestamp")


class Source(Processor):
    """Deserializes raw records; a record that cannot be read goes to the error policy.

    So does a record stamped too far in the future (past context.future_limit,
    from max_future_skew): let through, it would move stream time ahead and make
    every later record late, and it would sort after every other record of the
    task.  A table's source (check_future=False) lets it through: a table has no
    stream time to protect.
    """

    def __init__(self, name: str, key_serde: Serde, value_serde: Serde,
                 timestamp_extractor: TimestampExtractor | None = None, check_future: bool = True) -> None:
        super().__init__(name)
        self.key_serde = key_serde
        self.value_serde = value_serde
        self.timestamp_extractor = timestamp_extractor
        self.check_future = check_future

    def read(self, raws: list[RawRecord]) -> list[Record]:
        """The records that can be read, each with its event time; the others go to the error policy.

        The task orders records by these times before it forwards them.
        """
        records = self._read_extracting(raws) if self.timestamp_extractor is not None else self._read(raws)
        if self.check_future and records and max(map(_timestamp, records)) > self.context.future_limit:
            return self._without_future(records)
        return records

    def _without_future(self, batch: list[Record]) -> list[Record]:
        limit, kept = self.context.future_limit, []
        for r in batch:
            if r.timestamp <= limit:
                kept.append(r)
                continue
            exc = FutureTimestampError(f"timestamp {r.timestamp} is {r.timestamp - limit} ms beyond the "
                                       f"max_future_skew past wall-clock time (limit {limit})")
            self.context.report_error(r, exc, self.name)
        return kept

    def _read(self, raws: list[RawRecord]) -> list[Record]:
        keys_of = getattr(self.key_serde, "deserialize_many", None)
        values_of = getattr(self.value_serde, "deserialize_many", None)
        if keys_of is not None and values_of is not None:
            try:
                keys = keys_of([raw.key for raw in raws])
                values = values_of([raw.value for raw in raws])
            except Exception:
                pass  # some record cannot be read: the loop below singles it out
            else:
                return [Record(key, value, raw.timestamp, raw.headers, raw)
                        for key, value, raw in zip(keys, values, raws, strict=True)]
        deserialize_key = self.key_serde.deserialize
        deserialize_value = self.value_serde.deserialize
        out: list[Record] = []
        append = out.append
        for raw in raws:
            try:
                key = deserialize_key(raw.key)
                value = deserialize_value(raw.value)
            except Exception as exc:
                self._unreadable(raw, exc)
                continue
            append(Record(key, value, raw.timestamp, raw.headers, raw))
        return out

    def _read_extracting(self, raws: list[RawRecord]) -> list[Record]:
        """_read()'s loop with the timestamp taken from the extractor."""
        deserialize_key = self.key_serde.deserialize
        deserialize_value = self.value_serde.deserialize
        extract = self.timestamp_extractor
        out = []
        for raw in raws:
            try:
                key = deserialize_key(raw.key)
                value = deserialize_value(raw.value)
                timestamp = int(extract(key, value, raw))
            except Exception as exc:
                self._unreadable(raw, exc)
                continue
            out.append(Record(key, value, timestamp, raw.headers, raw))
        return out

    def _unreadable(self, raw: RawRecord, exc: Exception) -> None:
        self.context.report_error(Record(None, None, raw.timestamp, raw.headers, raw), exc, self.name)

    def process(self, batch: list[Record]) -> None:
        self.forward(batch)


class Sink(Processor):
    """Serializes records into the task's output, to a fixed topic or one chosen per record.

    Records are placed by the partitioner given, else by the key serde's own
    partition(key_bytes, partitions) if it has one (windowed keys go by their inner
    key), else by the hash of the key bytes.
    """

    def __init__(self, name: str, topic: str | TopicChooser, key_serde: Serde, value_serde: Serde,
                 partitioner: Callable[[bytes | None, int], int] | None = None) -> None:
        super().__init__(name)
        self.topic = topic
        self.key_serde = key_serde
        self.value_serde = value_serde
        self.partitioner = partitioner or getattr(key_serde, "partition", None)

    def process(self, batch: list[Record]) -> None:
        if isinstance(self.topic, str):
            self.context.emit(self.topic, batch, self.key_serde, self.value_serde, self.partitioner)
            return
        by_topic: dict[str, list[Record]] = {}
        choose = self.topic
        for r in batch:
            try:
                topic = choose(r.key, r.value)
                if type(topic) is not str:
                    topic = str(topic)  # a declared topic names itself
            except Exception as exc:
                self.context.report_error(r, exc, self.name)
                continue
            by_topic.setdefault(topic, []).append(r)
        for topic, records in by_topic.items():
            self.context.emit(topic, records, self.key_serde, self.value_serde, self.partitioner)
