"""``omnihub projector run`` and ``omnihub projections rebuild|status``."""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

from omnihub.settings import get_settings


def register(sub: Any) -> None:
    projector = sub.add_parser("projector", help="the stream processor that feeds read models")
    projector_sub = projector.add_subparsers(dest="action", required=True)
    run = projector_sub.add_parser("run", help="fold the log into Postgres and Redis")
    run.add_argument("--instance-id", help="static group membership id (fast restarts)")
    run.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from streams.processors.app import run_projector

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    settings = get_settings()
    if args.instance_id:
        settings = settings.model_copy(update={"projector_instance_id": args.instance_id})
    asyncio.run(run_projector(settings))
    return 0
