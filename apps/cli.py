"""The ``omnihub`` command: every process and operator command, registered by its module."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Each command and the module that registers it (``register(subparsers)`` adds its
# commands with a ``handler``): first the processes (``omnihub <process> run``, see
# streams.topology.PROCESSES), then the operators' commands. Only the module of the
# command asked for is imported, so a process starts without loading the others
# (web3, FastAPI, Temporal...); ``--help`` loads them all.
COMMANDS = {
    "api": "apps.api",
    "gateway": "apps.gateway",
    "worker": "apps.worker",
    "saga-bridge": "apps.saga_bridge",
    "plan-cache": "apps.plan_cache",
    "projector": "apps.projector",
    "notifier": "apps.notifier",
    "chain-watcher": "apps.chain_watcher",
    "stack": "apps.commands.stack",
    "schemas": "apps.commands.log",
    "topics": "apps.commands.log",
    "tail": "apps.commands.tail",
    "demo": "apps.commands.demo",
    "projections": "apps.commands.projections",
    "keys": "apps.commands.keys",
    "audit": "apps.commands.audit",
    "contracts": "apps.commands.contracts",
    "tenants": "apps.commands.tenants",
    "config": "apps.commands.config",
    "deadletters": "apps.commands.deadletters",
    "doctor": "apps.commands.doctor",
    "trace": "apps.commands.trace",
    "privacy": "apps.commands.privacy",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser for ``command`` alone, or for every command."""
    parser = argparse.ArgumentParser(prog="omnihub", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    wanted = [COMMANDS[command]] if command in COMMANDS else COMMANDS.values()
    for name in dict.fromkeys(wanted):
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv[0] if argv else None).parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
