"""The `streams` command: run workers, describe topologies, reset and replay.

    streams worker module:app        run a worker
    streams describe module:app      print the topology (--mermaid for a diagram)
    streams replay module:app --to-earliest | --to-datetime ISO | --by-duration PT1H | --to-offset N [--dry-run]
    streams reset module:app         replay from the earliest offsets and delete internal topics
    streams rebuild module:app       wipe local state; the next start restores it from changelogs
    streams lag module:app           per-partition and total lag of the app's consumer group

Operations options (--log-format, worker --web-port, lag) live in streams/cli_ops.py.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from streams import cli_ops

if TYPE_CHECKING:
    from streams.app import App


def load_app(spec: str) -> App:
    """Import "package.module:attribute" (attribute defaults to `app`)."""
    from streams.app import App

    module_name, _, attribute = spec.partition(":")
    if "" not in sys.path:
        sys.path.insert(0, "")
    module = importlib.import_module(module_name)
    app = getattr(module, attribute or "app", None)
    if not isinstance(app, App):
        raise SystemExit(f"{spec!r} does not name a streams.App")
    return app


def _parser(with_app_argument: bool) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streams", description="Stream processing on Apache Kafka.")
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    commands = parser.add_subparsers(dest="command", required=True)
    worker = commands.add_parser("worker", help="run a worker until SIGTERM or SIGINT")
    describe = commands.add_parser("describe", help="print the topology")
    describe.add_argument("--mermaid", action="store_true", help="print a Mermaid flowchart")
    replay = commands.add_parser("replay", help="reset input offsets and rebuild state by reprocessing")
    target = replay.add_mutually_exclusive_group(required=True)
    target.add_argument("--to-earliest", action="store_true", help="from the start of every input")
    target.add_argument("--to-datetime", metavar="ISO", help="from a moment, e.g. 2026-11-28T10:00:00+00:00")
    target.add_argument("--by-duration", metavar="PT1H", help="from this long ago (ISO-8601 duration)")
    target.add_argument("--to-offset", metavar="N", type=int, help="from offset N of every input partition")
    reset = commands.add_parser("reset", help="replay from the earliest offsets and delete internal topics")
    rebuild = commands.add_parser("rebuild", help="wipe local state so the next start restores it")
    for sub in (replay, reset, rebuild):
        sub.add_argument("--dry-run", action="store_true", help="print what would be done, change nothing")
    ops_commands = cli_ops.add_arguments(parser, commands, worker)
    if with_app_argument:
        for sub in (worker, describe, replay, reset, rebuild, *ops_commands):
            sub.add_argument("app", help="module:attribute of the App")
    return parser


def _execute(app: App, args: argparse.Namespace) -> int:
    cli_ops.setup_logging(args)
    if args.command == "describe":
        print(app.describe(mermaid=args.mermaid), end="")
        return 0
    if args.command == "lag":
        return cli_ops.lag_command(app, args)
    if args.command == "worker":
        from streams.errors import StartupError
        from streams.progress import RestoreProgressBar

        cli_ops.apply_worker_flags(app, args)
        try:
            app.run(restore_progress=RestoreProgressBar() if sys.stderr.isatty() else None)
        except StartupError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.command in ("replay", "reset", "rebuild"):
        return _replay_command(app, args)
    raise SystemExit(f"unknown command {args.command!r}")


def _replay_command(app: App, args: argparse.Namespace) -> int:
    import asyncio

    from streams.errors import StreamsError
    from streams.runtime.replay import ReplayTarget, rebuild, replay

    try:
        if args.command == "rebuild":
            rebuild(app.config, dry_run=args.dry_run)
            return 0
        if args.command == "reset":
            target = ReplayTarget(earliest=True)
        else:
            target = ReplayTarget.from_options(args.to_earliest, args.to_datetime, args.by_duration, args.to_offset)
        asyncio.run(replay(app.config, app.topology(), target, dry_run=args.dry_run))
    except (StreamsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def run_app_command(app: App, argv: list[str] | None) -> None:
    """`python myapp.py worker` for a script that calls app.main()."""
    argv = sys.argv[1:] if argv is None else argv
    args = _parser(with_app_argument=False).parse_args(argv or ["worker"])
    raise SystemExit(_execute(app, args))


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser(with_app_argument=True).parse_args(argv)
    raise SystemExit(_execute(load_app(args.app), args))
