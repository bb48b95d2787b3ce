"""The Admin protocol on aiokafka's AIOKafkaAdminClient.

Topic existence is probed with DescribeConfigs rather than Metadata: a Metadata
request for a missing topic would create it on brokers that auto-create topics.
Offsets by time come from a group-less consumer, because the admin client has
no ListOffsets call; committed offsets are written by a short-lived consumer of
the group, because it has no AlterConsumerGroupOffsets call either.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import (
    CommitFailedError,
    CoordinatorLoadInProgressError,
    GroupCoordinatorNotAvailableError,
    GroupIdNotFound,
    KafkaTimeoutError,
    NotCoordinatorError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
    for_code,
)

from streams.transport.base import TopicInfo, TopicPartition, TopicSpec
from streams.transport.kafka.partitions import all_to_aiokafka, from_aiokafka, keys_from_aiokafka, keys_to_aiokafka

OffsetSpec = str | int
COORDINATOR_STARTING = (GroupCoordinatorNotAvailableError, CoordinatorLoadInProgressError, NotCoordinatorError)


class KafkaAdmin:
    """Topics, offsets and group state of one cluster."""

    def __init__(
        self,
        brokers: str,
        *,
        admin_config: Mapping[str, Any] | None = None,
        client_config: Mapping[str, Any] | None = None,
        wait_timeout_s: float = 30.0,
    ) -> None:
        """admin_config goes to the admin client, client_config to the helper consumers."""
        self.brokers = brokers
        self.client_config = dict(client_config or {})
        self.wait_timeout_s = wait_timeout_s
        self._admin = AIOKafkaAdminClient(bootstrap_servers=brokers, **(admin_config or {}))
        self._offsets_consumer: AIOKafkaConsumer | None = None
        self._offsets_consumer_lock = asyncio.Lock()

    async def start(self) -> None:
        await self._admin.start()

    async def stop(self) -> None:
        if self._offsets_consumer is not None:
            await self._offsets_consumer.stop()
            self._offsets_consumer = None
        await self._admin.close()

    async def describe_topics(self, names: Iterable[str]) -> dict[str, TopicInfo | None]:
        configs = await self._topic_configs(names)
        existing = [name for name, config in configs.items() if config is not None]
        partitions: dict[str, int] = {}
        if existing:
            for topic in await self._admin.describe_topics(existing):
                if topic["error_code"] == 0:
                    partitions[topic["topic"]] = len(topic["partitions"])
                elif topic["error_code"] != UnknownTopicOrPartitionError.errno:
                    raise for_code(topic["error_code"])(f"describing topic {topic['topic']}")
        return {
            name: TopicInfo(name, partitions[name], config) if config is not None and name in partitions else None
            for name, config in configs.items()
        }

    async def create_topics(self, specs: Iterable[TopicSpec]) -> None:
        """Create the missing topics and wait until every one of them has leaders."""
        new_topics = [
            NewTopic(spec.name, spec.partitions, spec.replication_factor, topic_configs=dict(spec.config))
            for spec in specs
        ]
        if not new_topics:
            return
        response = await self._admin.create_topics(new_topics)
        for topic, error_code, message in response.topic_errors:
            if error_code not in (0, TopicAlreadyExistsError.errno):
                raise for_code(error_code)(f"creating topic {topic}: {message}")
        names = [topic.name for topic in new_topics]
        await self._wait_until(lambda: self._have_leaders(names), f"topics {names} to have leaders")

    async def delete_topics(self, names: Iterable[str]) -> None:
        """Delete the topics that exist and wait until they are gone."""
        names = list(dict.fromkeys(names))
        if not names:
            return
        response = await self._admin.delete_topics(names)
        for topic, error_code in response.topic_error_codes:
            if error_code not in (0, UnknownTopicOrPartitionError.errno):
                raise for_code(error_code)(f"deleting topic {topic}")

        async def gone() -> bool:
            return all(config is None for config in (await self._topic_configs(names)).values())

        await self._wait_until(gone, f"topics {names} to disappear")

    async def list_offsets(self, partitions: Iterable[TopicPartition], spec: OffsetSpec) -> dict[TopicPartition, int]:
        """Offsets for "earliest", "latest" or a timestamp; past the last timestamp, the latest offset."""
        tps = all_to_aiokafka(partitions)
        if not tps:
            return {}
        consumer = await self._offsets_client()
        if spec == "earliest":
            return keys_from_aiokafka(await consumer.beginning_offsets(tps))
        if spec == "latest":
            return keys_from_aiokafka(await consumer.end_offsets(tps))
        if not isinstance(spec, int) or isinstance(spec, bool):
            raise ValueError(f"offset spec must be 'earliest', 'latest' or a timestamp in ms, not {spec!r}")
        found = await consumer.offsets_for_times({tp: spec for tp in tps})
        offsets = {from_aiokafka(tp): hit.offset for tp, hit in found.items() if hit is not None}
        beyond = [tp for tp in tps if from_aiokafka(tp) not in offsets]
        if beyond:
            offsets.update(keys_from_aiokafka(await consumer.end_offsets(beyond)))
        return offsets

    async def committed_offsets(
        self, group_id: str, partitions: Iterable[TopicPartition]
    ) -> dict[TopicPartition, int | None]:
        tps = all_to_aiokafka(partitions)
        if not tps:
            return {}
        deadline = time.monotonic() + self.wait_timeout_s
        while True:
            try:
                found = await self._admin.list_consumer_group_offsets(group_id, partitions=tps)
                break
            except COORDINATOR_STARTING:
                # A new broker creates its offsets topic on the first group request.
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        result: dict[TopicPartition, int | None] = {}
        for tp in tps:
            entry = found.get(tp)
            result[from_aiokafka(tp)] = entry.offset if entry is not None and entry.offset >= 0 else None
        return result

    async def set_committed_offsets(self, group_id: str, offsets: Mapping[TopicPartition, int]) -> None:
        """Overwrite a group's offsets; the broker refuses while the group has active members."""
        if not offsets:
            return
        consumer = AIOKafkaConsumer(bootstrap_servers=self.brokers, group_id=group_id, **self._consumer_options())
        await consumer.start()
        try:
            consumer.assign(all_to_aiokafka(offsets))
            await consumer.commit(keys_to_aiokafka(offsets))
        except CommitFailedError as error:
            raise CommitFailedError(f"group {group_id} has active members; its offsets were not changed") from error
        finally:
            await consumer.stop()

    async def active_members(self, group_id: str) -> list[str]:
        """Member ids currently in the group; empty for an unknown or empty group."""
        members: list[str] = []
        for response in await self._admin.describe_consumer_groups([group_id]):
            for group in response.groups:
                error_code, group_members = group[0], group[5]
                if error_code == GroupIdNotFound.errno:
                    continue
                if error_code:
                    raise for_code(error_code)(f"describing group {group_id}")
                members.extend(member[0] for member in group_members)
        return sorted(members)

    async def _topic_configs(self, names: Iterable[str]) -> dict[str, dict[str, str] | None]:
        """Each topic's configs, or None for a topic that does not exist."""
        names = list(dict.fromkeys(names))
        if not names:
            return {}
        resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        configs: dict[str, dict[str, str] | None] = {}
        for response in await self._admin.describe_configs(resources):
            for error_code, message, _type, name, entries in response.resources:
                if error_code == UnknownTopicOrPartitionError.errno:
                    configs[name] = None
                elif error_code:
                    raise for_code(error_code)(f"describing configs of {name}: {message}")
                else:
                    configs[name] = {entry[0]: entry[1] for entry in entries if entry[1] is not None}
        return {name: configs.get(name) for name in names}

    async def _have_leaders(self, names: list[str]) -> bool:
        topics = await self._admin.describe_topics(names)
        return len(topics) == len(names) and all(
            topic["error_code"] == 0
            and topic["partitions"]
            and all(partition["leader"] >= 0 for partition in topic["partitions"])
            for topic in topics
        )

    async def _wait_until(self, condition: Callable[[], Awaitable[bool]], what: str) -> None:
        deadline = time.monotonic() + self.wait_timeout_s
        while not await condition():
            if time.monotonic() > deadline:
                raise KafkaTimeoutError(f"waited {self.wait_timeout_s}s for {what}")
            await asyncio.sleep(0.05)

    async def _offsets_client(self) -> AIOKafkaConsumer:
        async with self._offsets_consumer_lock:
            if self._offsets_consumer is None:
                consumer = AIOKafkaConsumer(bootstrap_servers=self.brokers, **self._consumer_options())
                await consumer.start()
                self._offsets_consumer = consumer
            return self._offsets_consumer

    def _consumer_options(self) -> dict[str, Any]:
        return {**self.client_config, "enable_auto_commit": False}
