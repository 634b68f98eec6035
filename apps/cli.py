"""The ``omnihub`` command: every process and operator command, registered by its module."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Modules exposing ``register(subparsers)``; each adds its commands with a ``handler``.
# First the processes (``omnihub <process> run``, see streams.topology.PROCESSES), then
# the operators' commands.
COMMAND_MODULES = (
    "apps.api",
    "apps.gateway",
    "apps.worker",
    "apps.saga_bridge",
    "apps.plan_cache",
    "apps.projector",
    "apps.notifier",
    "apps.commands.stack",
    "apps.commands.log",
    "apps.commands.demo",
    "apps.commands.projections",
    "apps.commands.keys",
    "apps.commands.contracts",
    "apps.commands.tenants",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="omnihub", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
