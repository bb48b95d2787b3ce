"""The Admin protocol on the embedded broker."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from aiokafka.errors import CommitFailedError, IllegalStateError

from streams.transport.base import TopicInfo, TopicPartition, TopicSpec
from streams.transport.embedded.broker import EmbeddedBroker
from streams.transport.embedded.registry import open_broker

OffsetSpec = str | int


class EmbeddedAdmin:
    """Topics, offsets and group state of an embedded broker."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._broker: EmbeddedBroker | None = None

    async def start(self) -> None:
        self._broker = open_broker(self.url)

    async def stop(self) -> None:
        self._broker = None

    async def describe_topics(self, names: Iterable[str]) -> dict[str, TopicInfo | None]:
        return self._started().describe_topics(dict.fromkeys(names))

    async def create_topics(self, specs: Iterable[TopicSpec]) -> None:
        """Create the topics that do not exist yet; existing ones are left alone (replication is ignored)."""
        self._started().create_topics(specs)

    async def delete_topics(self, names: Iterable[str]) -> None:
        self._started().delete_topics(dict.fromkeys(names))

    async def list_offsets(self, partitions: Iterable[TopicPartition], spec: OffsetSpec) -> dict[TopicPartition, int]:
        """Offsets for "earliest", "latest" or a timestamp; past the last timestamp, the latest offset."""
        broker = self._started()
        tps = [TopicPartition(*tp) for tp in partitions]
        if spec == "earliest":
            return {tp: broker.log_start(tp) for tp in tps}
        if spec == "latest":
            return {tp: broker.end_offset(tp) for tp in tps}
        if not isinstance(spec, int) or isinstance(spec, bool):
            raise ValueError(f"offset spec must be 'earliest', 'latest' or a timestamp in ms, not {spec!r}")
        offsets = {}
        for tp in tps:
            found = broker.offset_for_time(tp, spec)
            offsets[tp] = found if found is not None else broker.end_offset(tp)
        return offsets

    async def committed_offsets(
        self, group_id: str, partitions: Iterable[TopicPartition]
    ) -> dict[TopicPartition, int | None]:
        broker = self._started()
        return {TopicPartition(*tp): broker.committed(group_id, TopicPartition(*tp)) for tp in partitions}

    async def set_committed_offsets(self, group_id: str, offsets: Mapping[TopicPartition, int]) -> None:
        """Overwrite a group's offsets; refused while the group has active members, as on Kafka."""
        if not offsets:
            return
        broker = self._started()
        with broker.lock:
            if broker.groups.members(group_id):
                raise CommitFailedError(f"group {group_id} has active members; its offsets were not changed")
            broker.commit_offsets(group_id, {TopicPartition(*tp): offset for tp, offset in offsets.items()})

    async def active_members(self, group_id: str) -> list[str]:
        """Member ids currently in the group; empty for an unknown or empty group."""
        broker = self._started()
        with broker.lock:
            broker.groups.sweep()
            return broker.groups.members(group_id)

    def _started(self) -> EmbeddedBroker:
        if self._broker is None:
            raise IllegalStateError("the admin client is not started")
        self._broker.check_open()
        return self._broker
