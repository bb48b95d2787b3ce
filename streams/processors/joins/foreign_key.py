"""Foreign-key table-table joins: a left row joins the right row whose key its value names.

The left and right tables are partitioned by different keys, so the join talks
through two internal topics:

1. Subscriptions (left task -> right task, keyed by foreign key).  When a left
   row changes, LeftSubscriber keeps its new value in the join's own left
   store, reads the old one from there, and sends: an unsubscription to the old
   foreign key if it changed, and a subscription to the new one carrying the
   left key and a hash of the new left value.
2. Responses (right task -> left task, keyed by left key).  SubscriptionStore
   records each subscription (foreign key + left key -> hash) and answers it
   with the right row; RightUpdates answers every subscriber of a key whenever
   the right row changes (a delete answers with no row).
3. ResponseJoin compares a response's hash with the hash of the left row now in
   the left store.  A mismatch means the left row changed after the
   subscription was sent, so a newer response is on its way: this one is
   stale and dropped.  A match emits joiner(left, right), or for a missing right
   row a delete (inner) or joiner(left, None) (left join).

A left row whose value is deleted, or whose foreign key is None, needs no
answer: its result (a delete, or joiner(left, None) in a left join) is emitted
at once, and any response still on its way for an older value is stale by then.
Every subscription is answered, with a right row or without one, also in an
inner join.  The hash tells values apart, not moments: a response from before
a left row was deleted and re-inserted with the same value, or changed and
changed back, carries the current hash, and a right row deleted meanwhile sent
its response with a hash that was stale then.  The answer to the latest
subscription comes after all of those on the same partition, so it always
settles the result.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from typing import Any

from streams.processors.api import Processor, StoreProcessor
from streams.record import Record
from streams.serdes import Serde

UNSUBSCRIBE = 1
HAS_ROW = 1
HASH_SIZE = 16
_LENGTH = struct.Struct(">I")


def value_hash(raw: bytes) -> bytes:
    return hashlib.blake2b(raw, digest_size=HASH_SIZE).digest()


def subscription(flags: int, digest: bytes, left_key: bytes) -> bytes:
    """A subscription's value: flags, the left value's hash (zeros for an unsubscription), the left key."""
    return bytes((flags,)) + digest + left_key


def response(digest: bytes, right: bytes | None) -> bytes:
    """A response's value: whether it has a right row, the subscription's hash, the right row."""
    return bytes((0 if right is None else HAS_ROW,)) + digest + (right or b"")


def subscription_key(foreign_key: bytes, left_key: bytes) -> bytes:
    """The subscription store's key: every subscriber of a foreign key shares one prefix."""
    return _LENGTH.pack(len(foreign_key)) + foreign_key + left_key


class LeftSubscriber(StoreProcessor):
    """Keeps the left rows and sends (un)subscriptions; emits at once what needs no right row."""

    def __init__(self, name: str, store_name: str, foreign_key: Callable[[Any], Any], left_join: bool,
                 key_serde: Serde, value_serde: Serde, foreign_key_serde: Serde, joiner: Callable[[Any, Any], Any],
                 subscriptions: str) -> None:
        super().__init__(name, store_name)
        self.foreign_key = foreign_key
        self.left_join = left_join
        self.key_serde = key_serde
        self.value_serde = value_serde
        self.foreign_key_serde = foreign_key_serde
        self.joiner = joiner
        self.subscriptions_name = subscriptions
        self.subscriptions: Processor = None  # type: ignore[assignment]
        self.results: list[Processor] = []

    def init(self, context: Any) -> None:
        super().init(context)
        self.subscriptions = next(c for c in self.children if c.name == self.subscriptions_name)
        self.results = [c for c in self.children if c is not self.subscriptions]

    def _foreign_key(self, value: Any) -> bytes | None:
        fk = self.foreign_key(value)
        return None if fk is None else self.foreign_key_serde.serialize(fk)

    def process(self, batch: list[Record]) -> None:
        get, put, delete = self.store.get, self.store.put, self.store.delete
        serialize_key, serialize, deserialize = self.key_serde.serialize, self.value_serde.serialize, \
            self.value_serde.deserialize
        sent: list[Record] = []
        results: list[Record] = []
        for r in batch:
            if r.key is None:
                self.context.metrics.incr("dropped_null_records", 1, self.name)
                continue
            try:
                key = serialize_key(r.key)
                old_raw = get(key)
                old_fk = None if old_raw is None else self._foreign_key(deserialize(old_raw))
                new_raw = None if r.value is None else serialize(r.value)
                new_fk = None if r.value is None else self._foreign_key(r.value)
                local = None
                if new_fk is None and r.value is not None and self.left_join:
                    local = self.joiner(r.value, None)
            except Exception as exc:
                self.context.report_error(r, exc, self.name)
                continue
            if new_raw is None:
                delete(key)
            else:
                put(key, new_raw)
            if old_fk is not None and old_fk != new_fk:
                sent.append(Record(old_fk, subscription(UNSUBSCRIBE, bytes(HASH_SIZE), key), r.timestamp, r.headers,
                                   r.origin))
            if new_fk is not None:
                sent.append(Record(new_fk, subscription(0, value_hash(new_raw), key), r.timestamp, r.headers,
                                   r.origin))
            elif local is not None or old_raw is not None:
                results.append(Record(r.key, local, r.timestamp, r.headers, r.origin))
        if sent:
            self.subscriptions.process(sent)
        if results:
            for child in self.results:
                child.process(results)


class SubscriptionStore(StoreProcessor):
    """Records subscriptions by foreign key and answers each with the right row, or without one."""

    def __init__(self, name: str, store_name: str, right_store: str) -> None:
        super().__init__(name, store_name)
        self.right_store_name = right_store
        self.right: Any = None

    def init(self, context: Any) -> None:
        super().init(context)
        self.right = context.get_store(self.right_store_name)

    def process(self, batch: list[Record]) -> None:
        put, delete, right = self.store.put, self.store.delete, self.right.get
        out = []
        for r in batch:
            raw = r.value
            if r.key is None or raw is None or len(raw) < 1 + HASH_SIZE:
                self.context.metrics.incr("dropped_null_records", 1, self.name)
                continue
            flags, digest, left_key = raw[0], raw[1:1 + HASH_SIZE], raw[1 + HASH_SIZE:]
            store_key = subscription_key(r.key, left_key)
            if flags & UNSUBSCRIBE:
                delete(store_key)
                continue
            put(store_key, digest)
            out.append(Record(left_key, response(digest, right(r.key)), r.timestamp, r.headers, r.origin))
        self.forward(out)


class RightUpdates(StoreProcessor):
    """Answers every subscriber of a right key when its row changes."""

    def __init__(self, name: str, subscriptions_store: str, key_serde: Serde, value_serde: Serde) -> None:
        super().__init__(name, subscriptions_store)
        self.key_serde = key_serde
        self.value_serde = value_serde

    def process(self, batch: list[Record]) -> None:
        prefix, out = self.store.prefix, []
        for r in batch:
            if r.key is None:
                continue
            try:
                key = self.key_serde.serialize(r.key)
                row = None if r.value is None else self.value_serde.serialize(r.value)
            except Exception as exc:
                self.context.report_error(r, exc, self.name)
                continue
            start = len(key) + _LENGTH.size
            for store_key, digest in prefix(_LENGTH.pack(len(key)) + key):
                out.append(Record(store_key[start:], response(digest, row), r.timestamp, r.headers, r.origin))
        self.forward(out)


class ResponseJoin(StoreProcessor):
    """Joins each response that is not stale with the current left row."""

    def __init__(self, name: str, left_store: str, left_join: bool, key_serde: Serde, left_serde: Serde,
                 right_serde: Serde, joiner: Callable[[Any, Any], Any]) -> None:
        super().__init__(name, left_store)
        self.left_join = left_join
        self.key_serde = key_serde
        self.left_serde = left_serde
        self.right_serde = right_serde
        self.joiner = joiner

    def process(self, batch: list[Record]) -> None:
        get, joiner, out = self.store.get, self.joiner, []
        for r in batch:
            raw = r.value
            if r.key is None or raw is None or len(raw) < 1 + HASH_SIZE:
                self.context.metrics.incr("dropped_null_records", 1, self.name)
                continue
            current = get(r.key)
            if current is None or value_hash(current) != raw[1:1 + HASH_SIZE]:
                self.context.metrics.incr("stale_join_responses", 1, self.name)
                continue
            try:
                key = self.key_serde.deserialize(r.key)
                right = self.right_serde.deserialize(raw[1 + HASH_SIZE:]) if raw[0] & HAS_ROW else None
                if right is None and not self.left_join:
                    value = None
                else:
                    value = joiner(self.left_serde.deserialize(current), right)
            except Exception as exc:
                self.context.report_error(r, exc, self.name)
                continue
            out.append(Record(key, value, r.timestamp, r.headers, r.origin))
        self.forward(out)
