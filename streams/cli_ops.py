"""The operations part of the `streams` command: log format, the worker's web port, and `streams lag`.

    streams --log-format json worker module:app     one JSON object per log line
    streams worker module:app --web-port 8080       serve /metrics, /topology, /stores... on 127.0.0.1:8080
    streams lag module:app [--watch [--interval S]] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import orjson

from streams.runtime.logcontext import LOG_FORMATS, configure_logging

if TYPE_CHECKING:
    from streams.app import App
    from streams.runtime.lag import GroupLag


def add_arguments(parser: argparse.ArgumentParser, command: Callable[[str, str], argparse.ArgumentParser],
                  worker: argparse.ArgumentParser) -> None:
    """Add the options, and the commands through `command` (which gives them the app argument)."""
    parser.add_argument("--log-format", choices=LOG_FORMATS, default="plain",
                        help="plain text (default) or one JSON object per line with app_id, worker and task")
    worker.add_argument("--web-port", type=int, metavar="PORT",
                        help="serve health, metrics, the topology page and store queries on this port "
                             "(0: any free port); overrides STREAMS_WEB_PORT and App(web_port=...)")
    worker.add_argument("--web-host", metavar="HOST", help="bind the web server here (default 127.0.0.1)")
    lag = command("lag", "per-partition and total lag of the app's consumer group")
    lag.add_argument("--watch", action="store_true", help="print again every --interval seconds until Ctrl-C")
    lag.add_argument("--interval", type=float, default=2.0, metavar="S", help="seconds between --watch rounds")
    lag.add_argument("--json", action="store_true", help="one JSON object per round")


def setup_logging(args: argparse.Namespace) -> None:
    configure_logging(args.log_level, getattr(args, "log_format", "plain"))


def apply_worker_flags(app: App, args: argparse.Namespace) -> None:
    """Command-line flags win over App(...) arguments and the environment."""
    app.configure(web_port=getattr(args, "web_port", None), web_host=getattr(args, "web_host", None))


def lag_command(app: App, args: argparse.Namespace) -> int:
    """Print the lag once, or every --interval seconds with --watch; errors go to the CLI's one-line report."""
    from streams.errors import StreamsError
    from streams.runtime.lag import group_lag

    if args.interval <= 0:
        raise StreamsError(f"--interval must be a positive number of seconds, not {args.interval:g}",
                           hint="e.g. --interval 2")
    topology = app.topology()
    try:
        while True:
            report = asyncio.run(group_lag(app.config, topology))
            if args.json:
                line = {"time": datetime.now(UTC).isoformat(timespec="seconds"), **report.as_dict()}
                print(orjson.dumps(line).decode(), flush=True)
            else:
                print(format_lag(report), flush=True)
            if not args.watch:
                return 0
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return 0


def format_lag(report: GroupLag) -> str:
    rows = [("TOPIC", "PARTITION", "COMMITTED", "END", "LAG")]
    rows += [(p.topic, str(p.partition), "-" if p.committed is None else str(p.committed), str(p.end), str(p.lag))
             for p in report.partitions]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths, strict=True))) for row in rows]
    lines.append(f"group {report.group}: total lag {report.total}")
    return "\n".join(lines)
