"""``omnihub stack up|down|status|logs|env``: the local stack from the command line.

The stack is ``StackConfig.from_env()``: ``OMNIHUB_STATE_DIR`` and
``OMNIHUB_STACK_PORT_OFFSET`` select another one (e.g. the test stack: offset 10000,
state ``.omnihub/test``). ``up --brokers 3`` (or ``OMNIHUB_STACK_BROKERS=3``) runs Kafka
as a replicated three-broker cluster; the state folder remembers it afterwards.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

from infra import chain_service, stack
from infra.config import KAFKA_BROKER_CHOICES, StackConfig
from infra.process import tail
from infra.services import ServiceStatus, StackError

Handler = Callable[[argparse.Namespace], int]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``stack`` and its subcommands; each sets ``handler`` returning an exit code."""
    parser = subparsers.add_parser(
        "stack", help="run Kafka, Postgres, Redis and Temporal locally", description=__doc__
    )
    sub = parser.add_subparsers(dest="stack_command", required=True)
    commands: tuple[tuple[str, Handler, str], ...] = (
        ("up", _up, "start services (default: all) and wait until healthy"),
        ("down", _down, "stop services (default: all), in reverse order"),
        ("status", _status, "show state, pid and endpoint; exit 1 unless all are running"),
        ("restart", _restart, "stop, then start services (default: OmniHub's processes)"),
    )
    for name, handler, text in commands:
        command = sub.add_parser(name, help=text, description=text)
        command.add_argument("services", nargs="*", metavar="SERVICE")
        command.set_defaults(handler=handler)
        if name == "up":
            command.add_argument(
                "--brokers",
                type=int,
                choices=KAFKA_BROKER_CHOICES,
                help="Kafka brokers: 1, or a replicated 3-broker KRaft cluster "
                "(default: what the state folder was made with, else 1)",
            )
    logs = sub.add_parser("logs", help="print the end of a service log")
    logs.add_argument("name", metavar="SERVICE")
    logs.add_argument("-n", "--lines", type=int, default=50)
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    logs.set_defaults(handler=_logs)
    env = sub.add_parser("env", help="print `export OMNIHUB_...` lines for this stack")
    env.set_defaults(handler=_env)


def _print(statuses: list[ServiceStatus]) -> None:
    for item in statuses:
        print(item.line())


def _up(args: argparse.Namespace) -> int:
    cfg = StackConfig.from_env()
    if args.brokers is not None:
        cfg = dataclasses.replace(cfg, kafka_brokers=args.brokers)
    try:
        _print(stack.up(cfg, args.services))
        for line in chain_service.notes(cfg):
            print(line)
    except StackError as error:
        known = _known(args.services)
        if known is not None:
            _print(stack.status(cfg, known))
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def _restart(args: argparse.Namespace) -> int:
    """Down then up: by default OmniHub's own processes, not the servers holding data."""
    from infra.platform import SERVICES as PROCESSES

    cfg = StackConfig.from_env()
    names = args.services or [spec.name for spec in PROCESSES]
    try:
        stack.down(cfg, names)
        _print(stack.up(cfg, names))
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def _down(args: argparse.Namespace) -> int:
    cfg = StackConfig.from_env()
    try:
        _print(stack.down(cfg, args.services))
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def _status(args: argparse.Namespace) -> int:
    cfg = StackConfig.from_env()
    try:
        statuses = stack.status(cfg, args.services)
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    _print(statuses)
    for item in statuses:
        if item.state == "unhealthy":
            log_tail = tail(stack.log_path(cfg, item.name), 20)
            print(f"--- last lines of the {item.name} log ---\n{log_tail}", file=sys.stderr)
    return 0 if all(item.state == "running" for item in statuses) else 1


def _logs(args: argparse.Namespace) -> int:
    cfg = StackConfig.from_env()
    path = stack.log_path(cfg, args.name)
    if not path.exists():
        print(f"error: no log at {path}", file=sys.stderr)
        return 1
    print(tail(path, args.lines), flush=True)
    if args.follow:
        try:
            follow(path)
        except KeyboardInterrupt:
            pass
    return 0


def follow(path: Path, poll_s: float = 0.25) -> None:
    """Print what is appended to ``path`` until interrupted (a restart's new log too)."""
    position = path.stat().st_size
    while True:
        size = path.stat().st_size if path.exists() else 0
        if size < position:  # truncated or replaced: start over
            position = 0
        if size > position:
            with path.open("rb") as handle:
                handle.seek(position)
                sys.stdout.write(handle.read(size - position).decode(errors="replace"))
                sys.stdout.flush()
            position = size
        time.sleep(poll_s)


def _env(args: argparse.Namespace) -> int:
    cfg = StackConfig.from_env()
    for key, value in {**cfg.client_env(), **chain_service.deployment_env(cfg)}.items():
        print(f"export {key}={shlex.quote(value)}")
    return 0


def _known(names: list[str]) -> list[str] | None:
    """The known services among ``names`` (all when empty), None if there are none."""
    known = [spec.name for spec in stack.services()]
    if not names:
        return known
    return [name for name in names if name in known] or None
