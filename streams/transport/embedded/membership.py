"""One consumer's side of its group's rebalances.

Like a Kafka client's coordinator task, this runs beside the application's
polls, in a task of the consumer's event loop: it heartbeats, and when the
group rebalances it calls the listener's on_partitions_revoked, rejoins with
fresh subscription user data, hands the new assignment to the assignor and
calls on_partitions_assigned.  A listener's exception is kept and raised from
the consumer's next poll, as the Kafka transport does.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from streams.transport.base import GroupAssignor, RebalanceListener, TopicPartition
from streams.transport.embedded.config import ConsumerSettings
from streams.transport.embedded.groups import Member, Status

if TYPE_CHECKING:
    from streams.transport.embedded.broker import EmbeddedBroker
    from streams.transport.embedded.consumer import EmbeddedConsumer


class Membership:
    def __init__(self, consumer: EmbeddedConsumer, broker: EmbeddedBroker, group_id: str, topics: tuple[str, ...],
                 listener: RebalanceListener | None, assignor: GroupAssignor, settings: ConsumerSettings) -> None:
        self.consumer = consumer
        self.broker = broker
        self.group_id = group_id
        self.topics = topics
        self.listener = listener
        self.assignor = assignor
        self.settings = settings
        self.member_id = ""
        self.generation = -1
        self.failure: BaseException | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._join(loop)
        self._tasks = [loop.create_task(self._rebalances()), loop.create_task(self._heartbeats())]

    async def stop(self) -> None:
        """Leave the group without revoking through the listener, as a closing Kafka consumer does."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        with self.broker.lock:
            self.broker.groups.leave(self.group_id, self.member_id)
        self.member_id, self.generation = "", -1

    def change_topics(self, topics: tuple[str, ...], listener: RebalanceListener | None) -> None:
        self.topics = topics
        self.listener = listener
        with self.broker.lock:
            self.broker.groups.subscribe(self.group_id, self.member_id, topics)

    def request_rejoin(self) -> None:
        with self.broker.lock:
            self.broker.groups.request_rejoin(self.group_id, self.member_id)

    def raise_failure(self) -> None:
        failure, self.failure = self.failure, None
        if failure is not None:
            raise failure

    def _join(self, loop: asyncio.AbstractEventLoop) -> None:
        self.member_id = f"{self.settings.client_id}-{uuid.uuid4()}"
        self.generation = -1
        member = Member(self.member_id, self.topics, self.assignor, self.settings.session_timeout_s,
                        self.settings.rebalance_timeout_s, loop)
        with self.broker.lock:
            self.broker.groups.join(self.group_id, member)

    async def _heartbeats(self) -> None:
        while not self.broker.closed:
            with self.broker.lock:
                self.broker.groups.heartbeat(self.group_id, self.member_id)
            await asyncio.sleep(self.settings.heartbeat_interval_s)

    async def _rebalances(self) -> None:
        groups = self.broker.groups
        while not self.broker.closed:
            seen = self.broker.notifier.version
            with self.broker.lock:
                status, assignment, generation = groups.status(self.group_id, self.member_id)
                self._keep(groups.take_failure(self.group_id, self.member_id))
            if status is Status.UNKNOWN:  # the session expired: the partitions are lost, join anew
                lost = self.consumer._release_assignment()
                if lost:
                    await self._call(self._listener_method("on_partitions_revoked"), lost)
                self._join(asyncio.get_running_loop())
            elif status is Status.REJOIN:
                revoked = self.consumer._release_assignment()
                await self._call(self._listener_method("on_partitions_revoked"), revoked)
                user_data = b""
                try:
                    user_data = self.assignor.subscription_user_data()
                except Exception as error:
                    self._keep(error)
                with self.broker.lock:
                    groups.rejoined(self.group_id, self.member_id, user_data)
            elif status is Status.SYNC:
                try:
                    self.assignor.on_assignment(assignment)
                except Exception as error:
                    self._keep(error)
                with self.broker.lock:
                    groups.synced(self.group_id, self.member_id, generation)
                self.generation = generation
                partitions = set(assignment.partitions)
                self.consumer._take_assignment(partitions)
                try:
                    await self._call(self._listener_method("on_partitions_assigned"), partitions)
                finally:
                    self.consumer._open_fetching()
            else:
                await self.broker.notifier.wait(seen, self.settings.heartbeat_interval_s)

    def _listener_method(self, name: str) -> Callable[[set[TopicPartition]], Awaitable[None]] | None:
        return getattr(self.listener, name, None) if self.listener is not None else None

    async def _call(self, method: Callable[[set[TopicPartition]], Awaitable[None]] | None,
                    partitions: set[TopicPartition]) -> None:
        if method is None:
            return
        try:
            await method(partitions)
        except Exception as error:
            self._keep(error)

    def _keep(self, error: BaseException | None) -> None:
        if error is not None and self.failure is None:
            self.failure = error

