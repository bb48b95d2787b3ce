"""The `streams` command: run workers, inspect topologies and topics, send and read records, reset and replay.

    streams worker module:app        run a worker
    streams describe module:app      print the topology (--mermaid for a diagram)
    streams topics module:app        every topic the app reads, writes or creates, with partitions expected and found
    streams send module:app TOPIC --key K --value JSON     send one record (without --value: one per stdin line)
    streams tail module:app TOPIC [--from-beginning] [--follow]    print records as JSON lines
    streams replay module:app --to-earliest | --to-datetime ISO | --by-duration PT1H | --to-offset N [--dry-run]
    streams reset module:app         replay from the earliest offsets and delete internal topics
    streams rebuild module:app       wipe local state; the next start restores it from changelogs
                                     (from the inputs, by replay, if a changelog is lost)
    streams lag module:app           per-partition and total lag of the app's consumer group

A user's mistake (a module path that does not import, a missing topic, a
broker that cannot be reached, a local:// directory another process holds, a
bad setting) prints `error: ...` and a hint, and exits with status 2;
--traceback shows the stack instead.  So does what the operator must fix: a
state store that cannot be written (a full disk), a changelog that is gone.

Operations options (--log-format, worker --web-port and --web-host, lag) live in streams/cli_ops.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from streams import cli_ops
from streams.errors import StreamsError

if TYPE_CHECKING:
    from streams.app import App

USER_ERROR = 2
TAIL_LINES = 10


class CommandError(StreamsError):
    """A mistake in what the command was asked to do."""


def load_app(spec: str) -> App:
    """Import "package.module:attribute" (attribute defaults to `app`)."""
    from streams.app import App

    module_name, _, attribute = spec.partition(":")
    attribute = attribute or "app"
    if "" not in sys.path:
        sys.path.insert(0, "")
    if not module_name:
        raise CommandError(f"{spec!r} names no module", hint="give module:attribute, e.g. myproject.app:app")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not module_name.startswith(exc.name):
            raise  # the module imports something that is not installed: its own problem, with its traceback
        raise CommandError(f"cannot import {module_name!r}: {exc}",
                           hint="run from the folder that holds it, or add that folder to PYTHONPATH") from exc
    app = getattr(module, attribute, None)
    if not isinstance(app, App):
        problem = (f"module {module_name!r} has no attribute {attribute!r}" if app is None
                   else f"{module_name}:{attribute} is a {type(app).__name__}, not a streams.App")
        raise CommandError(problem, hint=f"give module:attribute naming the App, e.g. {module_name}:app")
    return app


def _parser(with_app_argument: bool) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streams", description="Stream processing on Apache Kafka.")
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    parser.add_argument("--traceback", action="store_true", help="show the stack of an error instead of one line")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help)
        if with_app_argument:
            sub.add_argument("app", help="module:attribute of the App")
        return sub

    worker = command("worker", "run a worker until SIGTERM or SIGINT")
    describe = command("describe", "print the topology")
    describe.add_argument("--mermaid", action="store_true", help="print a Mermaid flowchart")
    command("topics", "list the topics the app reads, writes and creates, with their partitions")
    send = command("send", "send records to a topic with the app's serdes")
    send.add_argument("topic")
    send.add_argument("--key", help="the key (parsed as JSON unless the topic's key serde is str or bytes)")
    send.add_argument("--value", help="the value, parsed likewise; without it, one value per line of stdin")
    send.add_argument("--separator", help="with stdin lines: split each line at the first SEP into key and value")
    tail = command("tail", "print a topic's records as JSON lines, read with the app's serdes")
    tail.add_argument("topic")
    tail.add_argument("--from-beginning", action="store_true", help="every record, not the last few")
    tail.add_argument("-n", "--lines", type=int, default=TAIL_LINES,
                      help=f"how many of the last records (default {TAIL_LINES})")
    tail.add_argument("--follow", action="store_true", help="keep printing new records until Ctrl-C")
    replay = command("replay", "reset input offsets and rebuild state by reprocessing")
    target = replay.add_mutually_exclusive_group(required=True)
    target.add_argument("--to-earliest", action="store_true", help="from the start of every input")
    target.add_argument("--to-datetime", metavar="ISO", help="from a moment, e.g. 2026-11-28T10:00:00+00:00")
    target.add_argument("--by-duration", metavar="PT1H", help="from this long ago (ISO-8601 duration)")
    target.add_argument("--to-offset", metavar="N", type=int, help="from offset N of every input partition")
    reset = command("reset", "replay from the earliest offsets and delete internal topics")
    rebuild = command("rebuild", "wipe local state so the next start restores it; replay the inputs instead if a "
                      "changelog is lost")
    for sub in (replay, reset, rebuild):
        sub.add_argument("--dry-run", action="store_true", help="print what would be done, change nothing")
    cli_ops.add_arguments(parser, command, worker)
    return parser


def _execute(app: App, args: argparse.Namespace) -> int:
    cli_ops.setup_logging(args)
    if args.command == "describe":
        print(app.describe(mermaid=args.mermaid), end="")
        return 0
    if args.command == "worker":
        from streams.progress import RestoreProgressBar

        cli_ops.apply_worker_flags(app, args)
        app.run(restore_progress=RestoreProgressBar() if sys.stderr.isatty() else None)
        return 0
    if args.command != "rebuild":  # rebuild only touches local state: it asks the group only if it can
        asyncio.run(_reach_brokers(app))
    if args.command == "lag":
        return cli_ops.lag_command(app, args)
    if args.command == "topics":
        return asyncio.run(_topics(app))
    if args.command == "send":
        return asyncio.run(_send(app, args))
    if args.command == "tail":
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_tail(app, args))
        return 0
    return _replay_command(app, args)


@contextlib.contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """Silence a library's logger: the command reports the failure itself, once."""
    log = logging.getLogger(logger)
    level, log.level = log.level, logging.CRITICAL + 1
    try:
        yield
    finally:
        log.level = level


async def _reach_brokers(app: App) -> None:
    """Connect once before a tool command, so that an unreachable broker is one error and not a page of
    client logs (a worker reports it the same way, after what its own start checks first)."""
    from aiokafka.errors import KafkaConnectionError

    admin = app.transport().admin()
    with _quiet("aiokafka"):
        try:
            await admin.start()
        except KafkaConnectionError as exc:
            raise CommandError(f"cannot reach the Kafka brokers at {app.config.brokers}: {exc}",
                               hint="is the broker running? set STREAMS_BROKERS (or App(brokers=...)) to its "
                                    "host:port") from exc
    await admin.stop()


async def _topics(app: App) -> int:
    from streams.runtime.topics import topic_uses

    topology = app.topology()
    admin = app.transport().admin()
    await admin.start()
    try:
        dlq = app.config.dlq_topic if app.config.on_error == "dlq" else None
        uses = await topic_uses(admin, topology, dlq)
    finally:
        await admin.stop()
    rows = [("TOPIC", "USE", "CREATED BY APP", "PARTITIONS EXPECTED", "FOUND")]
    for use in uses:
        if use.expected is None:
            expected = "any" if use.at_least else "?"
        else:
            expected = f"{use.expected} or more" if use.at_least else str(use.expected)
        rows.append((use.name, ", ".join(use.roles), "yes" if use.created else "no", expected,
                     "missing" if use.found is None else str(use.found)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    if any(n.params.get("dynamic_topic") for s in topology.subtopologies for n in s.nodes):
        print("(and the topics that to(function) chooses per record)")
    return 0


def _parse(text: str, serde: Any, what: str) -> Any:
    """Command-line text as a key or value: as is for str and bytes serdes, else JSON."""
    name = getattr(serde, "name", None)
    if name == "str":
        return text
    if name == "bytes":
        return text.encode()
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise CommandError(f"{what} {text!r} is not JSON: {exc}",
                           hint="quote strings as JSON, e.g. --value '\"hello\"' or --value '{\"n\": 1}'") from exc


async def _send(app: App, args: argparse.Namespace) -> int:
    from streams.dsl.topic import bound_serdes
    from streams.runtime.clients import send_records
    from streams.transport.base import OutRecord

    ks, vs = bound_serdes(app.builder.topics, args.topic)
    if args.value is not None:
        pairs = [(args.key, args.value)]
    else:
        pairs = []
        for line in sys.stdin.read().splitlines():
            if not line.strip():
                continue
            if args.separator:
                key, found, value = line.partition(args.separator)
                if not found:
                    raise CommandError(f"line {line!r} has no {args.separator!r} between key and value",
                                       hint="write each line as KEY<separator>VALUE")
                pairs.append((key, value))
            else:
                pairs.append((args.key, line))
    records = [OutRecord(args.topic, -1, ks.serialize(None if k is None else _parse(k, ks, "key")),
                         vs.serialize(_parse(v, vs, "value")), None, ()) for k, v in pairs]
    declared = {name: topic.spec for name, topic in app.builder.topics.items()}
    await send_records(app.config, declared, records)
    print(f"sent {len(records)} record{'s' if len(records) != 1 else ''} to {args.topic}", file=sys.stderr)
    return 0


async def _tail(app: App, args: argparse.Namespace) -> None:
    from streams.dsl.topic import bound_serdes
    from streams.runtime.clients import TopicReader

    ks, vs = bound_serdes(app.builder.topics, args.topic)
    transport = app.transport()
    admin = transport.admin()
    await admin.start()
    reader = TopicReader(transport, args.topic, ks, vs, app.config.consumer_config)
    try:
        await reader.start(admin, "beginning" if args.from_beginning else "end", last=args.lines)
        ends = await reader.end_offsets()
        backlog = []
        while not await reader.caught_up(ends):
            backlog.extend(await reader.poll(200))
        if not args.from_beginning:
            backlog = sorted(backlog, key=lambda r: r.timestamp)[-args.lines:] if args.lines > 0 else []
        _print(backlog)
        while args.follow:
            _print(await reader.poll(500))
    finally:
        await reader.stop()
        await admin.stop()


def _print(records: list) -> None:
    for r in records:
        line = {"partition": r.origin.partition, "offset": r.origin.offset, "timestamp": r.timestamp,
                "key": r.key, "value": r.value}
        print(orjson.dumps(line, default=_printable, option=orjson.OPT_NON_STR_KEYS).decode(), flush=True)


def _printable(obj: Any) -> Any:
    if isinstance(obj, bytes):
        return obj.decode(errors="backslashreplace")
    return str(obj)


def _replay_command(app: App, args: argparse.Namespace) -> int:
    from streams.runtime.replay import ReplayTarget, rebuild, replay

    if args.command == "rebuild":
        asyncio.run(rebuild(app.config, app.topology(), dry_run=args.dry_run))
        return 0
    if args.command == "reset":
        target = ReplayTarget(earliest=True)
    else:
        try:
            target = ReplayTarget.from_options(args.to_earliest, args.to_datetime, args.by_duration, args.to_offset)
        except ValueError as exc:
            raise CommandError(str(exc), hint="see `streams replay --help`") from exc
    asyncio.run(replay(app.config, app.topology(), target, dry_run=args.dry_run))
    return 0


def _settings_error(exc: ValueError) -> bool:
    """Whether a ValueError is a bad setting: StreamsConfig names the setting first, as "setting: problem"."""
    from dataclasses import fields

    from streams.config import StreamsConfig

    setting = str(exc).partition(":")[0]
    return setting in {f.name for f in fields(StreamsConfig)}


def _guarded(run: Callable[[], int], show_traceback: bool) -> int:
    """Run a command; a user's mistake becomes `error: ...` and a hint on stderr, and exit status 2."""
    from aiokafka.errors import KafkaConnectionError

    from streams.state.errors import StoreError

    try:
        return run()
    except (StreamsError, StoreError, ValueError, KafkaConnectionError) as exc:
        if show_traceback or (isinstance(exc, ValueError) and not _settings_error(exc)):
            raise
        if isinstance(exc, StreamsError):
            message, hint = exc.message, exc.hint
        elif isinstance(exc, StoreError):
            message = str(exc)
            hint = ("free space on the state directory's disk (or repair it), then start the worker again: "
                    "restore replays what the store missed from its changelog")
        elif isinstance(exc, KafkaConnectionError):
            message = f"cannot reach the Kafka brokers: {exc}"
            hint = "is the broker running? set STREAMS_BROKERS (or App(brokers=...)) to its host:port"
        else:
            message, hint = str(exc), "fix the setting in App(...), or in its STREAMS_<SETTING> environment variable"
        print(f"error: {message}", file=sys.stderr)
        print(f"hint: {hint or 'add --traceback to see where it happened'}", file=sys.stderr)
        return USER_ERROR


def run_app_command(app: App, argv: list[str] | None) -> None:
    """`python myapp.py worker` for a script that calls app.main()."""
    argv = sys.argv[1:] if argv is None else argv
    args = _parser(with_app_argument=False).parse_args(argv or ["worker"])
    raise SystemExit(_guarded(lambda: _execute(app, args), args.traceback))


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser(with_app_argument=True).parse_args(argv)
    raise SystemExit(_guarded(lambda: _execute(load_app(args.app), args), args.traceback))
