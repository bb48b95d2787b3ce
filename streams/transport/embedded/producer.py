"""The Producer protocol on the embedded broker.

send_many writes each partition's records as one batch straight into the log
(so consumers see them without waiting for a flush, as with Kafka's short
linger); flush() reports what was written since the last flush and raises the
first error.  A transactional producer writes its records as pending: they
take their offsets at once, are seen by read_uncommitted consumers, and reach
read_committed consumers only when the transaction commits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from aiokafka.errors import IllegalOperation, IllegalStateError

from streams.transport.base import GroupMetadata, OutRecord, TopicPartition
from streams.transport.embedded.broker import EmbeddedBroker
from streams.transport.embedded.config import PRODUCER_OPTIONS, check_options
from streams.transport.embedded.errors import ProducerFencedError
from streams.transport.embedded.registry import open_broker

T = TypeVar("T")


class EmbeddedProducer:
    def __init__(self, url: str, *, transactional_id: str | None = None,
                 config: Mapping[str, Any] | None = None) -> None:
        check_options(config or {}, PRODUCER_OPTIONS, "producer")
        self.url = url
        self.transactional_id = transactional_id
        self._broker: EmbeddedBroker | None = None
        self._epoch = -1
        self._in_transaction = False
        self._fenced: ProducerFencedError | None = None
        self._written: dict[TopicPartition, int] = {}
        self._error: Exception | None = None
        self._transaction_error: Exception | None = None

    async def start(self) -> None:
        """Open the broker; a transactional producer takes a new epoch, fencing older ones with its id."""
        if self._broker is not None:
            return
        broker = open_broker(self.url)
        if self.transactional_id is not None:
            self._epoch = broker.init_transactions(self.transactional_id)
        self._broker = broker

    async def stop(self) -> None:
        """Stop; an open transaction is aborted rather than left to block read_committed consumers."""
        broker = self._broker
        if broker is not None and self._in_transaction and self._fenced is None and not broker.closed:
            try:
                broker.end_transaction(self.transactional_id, self._epoch, commit=False)
            except ProducerFencedError:
                pass
        self._in_transaction = False
        self._broker = None

    async def send_many(self, records: Iterable[OutRecord]) -> None:
        """Write records now, one batch per partition; errors surface at flush()."""
        broker = self._started()
        transaction = None
        if self.transactional_id is not None:
            if not self._in_transaction:
                raise IllegalOperation("can't send messages while not in a transaction")
            transaction = (self.transactional_id, self._epoch)
        written, error = self._guard(lambda: broker.append(records, transaction))
        for tp, last in written.items():
            self._written[tp] = max(last, self._written.get(tp, -1))
        if error is not None:
            self._error = self._error or error
            if self._in_transaction:
                self._transaction_error = self._transaction_error or error

    async def flush(self) -> dict[TopicPartition, int]:
        """The last offset written per partition since the last flush; raises the first send error."""
        self._started()
        written, self._written = self._written, {}
        error, self._error = self._error, None
        if error is not None:
            raise error
        return written

    async def begin_transaction(self) -> None:
        broker = self._transactional()
        if self._in_transaction:
            raise IllegalStateError("a transaction is already open")
        self._guard(lambda: broker.check_epoch(self.transactional_id, self._epoch))
        self._in_transaction = True
        self._transaction_error = None

    async def send_offsets_to_transaction(self, offsets: Mapping[TopicPartition, int],
                                          group: str | GroupMetadata) -> None:
        """Hold offsets in the transaction; with GroupMetadata, refused from a stale generation (KIP-447)."""
        broker = self._open_transaction()
        offsets = {TopicPartition(*tp): offset for tp, offset in offsets.items()}
        if isinstance(group, GroupMetadata):
            group_id, member = group.group_id, (group.member_id, group.generation_id)
        else:
            group_id, member = group, None
        self._guard(lambda: broker.add_offsets_to_transaction(self.transactional_id, self._epoch, group_id, offsets,
                                                              member))

    async def commit_transaction(self) -> None:
        """Make the transaction's records and offsets visible together; fails if any of its sends failed."""
        broker = self._open_transaction()
        if self._transaction_error is not None:
            raise self._transaction_error
        self._guard(lambda: broker.end_transaction(self.transactional_id, self._epoch, commit=True))
        self._end_transaction()

    async def abort_transaction(self) -> None:
        """Discard the transaction: its records become aborted, its offsets are dropped."""
        broker = self._open_transaction()
        self._guard(lambda: broker.end_transaction(self.transactional_id, self._epoch, commit=False))
        self._end_transaction()

    def _end_transaction(self) -> None:
        self._in_transaction = False
        self._transaction_error = None
        self._written.clear()
        self._error = None

    def _guard(self, call: Callable[[], T]) -> T:
        """Run a broker call; once fenced, the producer stays fenced, as on Kafka."""
        try:
            return call()
        except ProducerFencedError as fenced:
            self._fenced = fenced
            self._in_transaction = False
            raise

    def _transactional(self) -> EmbeddedBroker:
        broker = self._started()
        if self.transactional_id is None:
            raise IllegalOperation("transactions need a producer with a transactional_id")
        return broker

    def _open_transaction(self) -> EmbeddedBroker:
        broker = self._transactional()
        if not self._in_transaction:
            raise IllegalStateError("no transaction is open; call begin_transaction() first")
        return broker

    def _started(self) -> EmbeddedBroker:
        if self._fenced is not None:
            raise ProducerFencedError(str(self._fenced))
        if self._broker is None:
            raise IllegalStateError("the producer is not started")
        self._broker.check_open()
        return self._broker
