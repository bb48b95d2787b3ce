"""Replay, reset and rebuild: move an application back in time and rebuild its state.

Like Kafka's streams application reset tool, these need the application stopped:
with active group members they refuse, and a worker on this machine holding the
state folder's lock stops the wipe.  Each returns the lines it printed, one
per action, topic by topic.

Replay recreates the internal topics it deletes, empty: a worker that finds a
changelog missing while its group has committed offsets takes it for lost state
and stops (streams.runtime.worker), so the topics must exist when it starts.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from streams.compiler.compile import CompiledTopology, plan_tasks
from streams.config import StreamsConfig
from streams.errors import StreamsError
from streams.runtime.state_lock import StateDirLock
from streams.runtime.topics import changelog_specs, internal_topic_specs
from streams.transport.base import Admin, TopicPartition
from streams.transport.factory import open_transport

_DURATION = re.compile(r"^P(?:(?P<days>\d+(?:\.\d+)?)D)?(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?"
                       r"(?:(?P<minutes>\d+(?:\.\d+)?)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$")


def parse_duration(text: str) -> timedelta:
    """An ISO-8601 duration such as PT1H, P1DT12H or PT90S."""
    match = _DURATION.match(text.strip().upper())
    if not match or text.strip().upper() in ("P", "PT"):
        raise ValueError(f"not an ISO-8601 duration: {text!r} (examples: PT1H, P1D, PT30M)")
    parts = {k: float(v) for k, v in match.groupdict().items() if v}
    return timedelta(**parts)


@dataclass(frozen=True)
class ReplayTarget:
    """Where to move the input offsets: earliest, a timestamp in ms, or an absolute offset."""

    earliest: bool = False
    timestamp_ms: int | None = None
    offset: int | None = None
    moment: datetime | None = None  # --to-datetime as given, so that its time zone is echoed back

    @classmethod
    def from_options(cls, to_earliest: bool, to_datetime: str | None, by_duration: str | None,
                     to_offset: int | None, now: Callable[[], float] = time.time) -> ReplayTarget:
        chosen = [to_earliest, to_datetime is not None, by_duration is not None, to_offset is not None]
        if sum(chosen) != 1:
            raise ValueError("choose exactly one of --to-earliest, --to-datetime, --by-duration, --to-offset")
        if to_earliest:
            return cls(earliest=True)
        if to_datetime is not None:
            moment = datetime.fromisoformat(to_datetime)
            if moment.tzinfo is None:
                raise ValueError("--to-datetime needs a timezone, e.g. 2026-11-28T10:00:00+00:00")
            return cls(timestamp_ms=int(moment.timestamp() * 1000), moment=moment)
        if by_duration is not None:
            return cls(timestamp_ms=int((now() - parse_duration(by_duration).total_seconds()) * 1000))
        return cls(offset=to_offset)

    def describe(self) -> str:
        if self.earliest:
            return "the earliest offsets"
        if self.timestamp_ms is not None:
            moment = self.moment or datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)
            return f"the first offsets at or after {moment.isoformat()}"
        return f"offset {self.offset}"


async def _input_partitions(topology: CompiledTopology, admin: Admin) -> list[TopicPartition]:
    info = await admin.describe_topics(topology.external_source_topics)
    missing = sorted(t for t, i in info.items() if i is None)
    if missing:
        raise StreamsError(f"input topics do not exist: {', '.join(missing)}")
    return [TopicPartition(t, p) for t, i in sorted(info.items()) for p in range(i.partitions)]


async def _targets(admin: Admin, partitions: list[TopicPartition], target: ReplayTarget) -> dict[TopicPartition, int]:
    earliest = await admin.list_offsets(partitions, "earliest")
    if target.earliest:
        return earliest
    if target.timestamp_ms is not None:
        return await admin.list_offsets(partitions, target.timestamp_ms)
    latest = await admin.list_offsets(partitions, "latest")
    return {tp: min(max(target.offset, earliest[tp]), latest[tp]) for tp in partitions}


async def replay(config: StreamsConfig, topology: CompiledTopology, target: ReplayTarget, dry_run: bool = False,
                 delete_internal: bool = True,
                 out: Callable[[str], None] = print) -> list[str]:
    """Reset input offsets to the target, delete internal topics and wipe local state."""
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        out(line)

    admin = open_transport(config).admin()
    await admin.start()
    try:
        await _refuse_while_running(admin, config, "replaying (the reset needs the consumer group empty)")
        partitions = await _input_partitions(topology, admin)
        offsets = await _targets(admin, partitions, target)
        prefix = "would " if dry_run else ""
        say(f"{prefix}reset {config.app_id} to {target.describe()}:")
        for tp in partitions:
            say(f"  {prefix}set {tp.topic}[{tp.partition}] to offset {offsets[tp]}")
        if not dry_run:
            await admin.set_committed_offsets(config.app_id, offsets)
        if delete_internal:
            counts: dict[str, int] = {}
            for tp in partitions:
                counts[tp.topic] = max(counts.get(tp.topic, 0), tp.partition + 1)
            specs = internal_topic_specs(topology, plan_tasks(topology, counts))
            existing = await admin.describe_topics([spec.name for spec in specs])
            for topic in sorted(t for t, info in existing.items() if info is not None):
                say(f"  {prefix}delete internal topic {topic}")
            say(f"  {prefix}create the internal topics again, empty")
            if not dry_run:
                await admin.delete_topics([t for t, info in existing.items() if info is not None])
                await admin.create_topics(specs)
        wipe_local_state(config, dry_run, say)
    finally:
        await admin.stop()
    return lines


async def _refuse_while_running(admin: Admin, config: StreamsConfig, doing: str) -> None:
    members = await admin.active_members(config.app_id)
    if members:
        raise StreamsError(f"application {config.app_id!r} has {len(members)} active members",
                           hint=f"stop every worker before {doing}")


def wipe_local_state(config: StreamsConfig, dry_run: bool, say: Callable[[str], None]) -> None:
    """Delete the app's state folder, holding its lock: a worker on this machine that holds it stops the wipe."""
    folder = config.state_path()
    if not folder.exists():
        say(f"  no local state at {folder}")
        return
    if dry_run:
        say(f"  would delete local state {folder}")
        return
    lock = StateDirLock(config)
    lock.acquire()
    try:
        say(f"  delete local state {folder}")
        shutil.rmtree(folder)
    finally:
        lock.release()


async def rebuild(config: StreamsConfig, topology: CompiledTopology, dry_run: bool = False,
                  out: Callable[[str], None] = print) -> list[str]:
    """Wipe local state, so that the next start restores every store from its changelog.

    Refused while the group has active members, as replay and reset are: a
    running worker's stores would vanish under it.  Local state needs no broker,
    so with none reachable the state folder's lock alone guards the workers of
    this machine, the only ones whose stores a rebuild here deletes.

    If a changelog is gone (deleted, or lost with its broker), restoring would
    give an empty store: the state is rebuilt from the input topics instead, by
    a replay from the earliest offsets (which produces the outputs again).
    """
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        out(line)

    missing = await _lost_changelogs_if_reachable(config, topology)
    if missing:
        say(f"changelog topics missing: {', '.join(missing)}; {'would rebuild' if dry_run else 'rebuilding'} the "
            f"state of {config.app_id} from the input topics, by a replay from the earliest offsets:")
        return lines + await replay(config, topology, ReplayTarget(earliest=True), dry_run=dry_run, out=out)
    reached = missing is not None
    say(f"{'would rebuild' if dry_run else 'rebuilding'} local state of {config.app_id} from changelogs on next start:")
    if not reached:
        say(f"  the brokers at {config.brokers} cannot be reached: only this machine's workers are checked, "
            "by the state folder's lock")
    wipe_local_state(config, dry_run, say)
    return lines


async def _lost_changelogs_if_reachable(config: StreamsConfig, topology: CompiledTopology) -> list[str] | None:
    """The app's changelogs that do not exist; None if the brokers cannot be reached to ask.

    Refuses first if the group has active members.
    """
    from aiokafka.errors import KafkaConnectionError

    admin = open_transport(config).admin()
    try:
        await admin.start()
    except KafkaConnectionError:
        return None
    try:
        await _refuse_while_running(admin, config, "rebuilding (its stores would be deleted under it)")
        counts: dict[str, int] = {}
        for tp in await _input_partitions(topology, admin):
            counts[tp.topic] = max(counts.get(tp.topic, 0), tp.partition + 1)
        names = [spec.name for spec in changelog_specs(topology, plan_tasks(topology, counts))]
        return sorted(t for t, info in (await admin.describe_topics(names)).items() if info is None)
    finally:
        await admin.stop()
