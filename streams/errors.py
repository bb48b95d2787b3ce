"""Exceptions raised by the framework, each naming what went wrong and where."""

from __future__ import annotations


class StreamsError(Exception):
    """Base class of the framework's errors.

    `hint` says what to do about it; it is part of the message, and the command
    line prints it on a line of its own.
    """

    def __init__(self, *args: object, hint: str | None = None) -> None:
        super().__init__(*args)
        self.hint = hint

    @property
    def message(self) -> str:
        return super().__str__()

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class TopologyError(StreamsError):
    """The topology cannot work: unknown topics, bad co-partitioning, wrong callback shapes."""


class UnknownTopicError(StreamsError):
    """A record is bound for a topic that does not exist."""


class ProcessingError(StreamsError):
    """A record failed under the "fail" error policy; its offset is not committed."""

    def __init__(self, operator: str, topic: str, partition: int, offset: int, cause: BaseException) -> None:
        super().__init__(
            f"operator {operator!r} failed on {topic}[{partition}]@{offset}: {type(cause).__name__}: {cause}"
        )
        self.operator = operator
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.cause = cause


class SerializationError(StreamsError):
    """A key or value cannot be turned into bytes or back: the record goes to the error policy (the DLQ)."""


class StartupError(StreamsError):
    """The worker cannot start because something it needs is missing; the message says what."""


class TaskFencedError(StreamsError):
    """Another worker owns this task now; the task must close without committing."""


class BufferFullError(StreamsError):
    """A suppression's buffer reached its max_records or max_bytes with when_full="fail"."""


class UnsupportedBrokerError(StreamsError):
    """The broker lacks a protocol version that a setting needs; the message names the setting that works."""


class GenerationFencedError(StreamsError):
    """The group coordinator refused offsets from a stale group generation (exactly_once_v2).

    The group rebalanced without this worker: its tasks may run elsewhere now,
    so it aborts its transaction, closes them without committing and rejoins.
    """


class StoreUnavailableError(StreamsError):
    """An interactive query cannot be answered right now: the key's task is moving or restoring.

    Retrying after `retry_after` seconds usually succeeds; the framework never
    answers such a query with a value that may be wrong.
    """

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class FutureTimestampError(StreamsError):
    """A record is stamped further past wall-clock time than max_future_skew allows; it is bad input."""


class TimerError(StreamsError):
    """A timer or crontab callback raised under on_error="fail"; the worker stops after committing."""


class StateDirLockedError(StreamsError):
    """Another worker of the application holds its state folder on this machine."""


class StateLostError(StreamsError):
    """An internal topic holding state (a changelog, a repartition topic) is gone from Kafka.

    Recreating it empty would silently restart the state from nothing, so the
    worker stops instead; `streams rebuild` replays the input topics to rebuild it.
    """
