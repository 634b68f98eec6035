"""The ``omnihub`` command: each area registers its own subcommands."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Modules exposing ``register(subparsers)``; each adds its commands with a ``handler``.
COMMAND_MODULES = (
    "infra.cli",
    "streams.cli",
    "omnihub.demo",
    "projections.cli",
    "sagas.cli",
    "api.security.cli",
    "projections.plan_cache.cli",
    "contracts.cli",
    "api.security.tenants_cli",
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
