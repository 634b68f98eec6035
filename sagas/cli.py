"""``omnihub worker`` (the Temporal worker) and ``omnihub saga-bridge run`` (Kafka -> Temporal)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import Any

from omnihub.settings import get_settings


def register(sub: Any) -> None:
    worker = sub.add_parser("worker", help="run a Temporal worker for AgentWorkflow")
    worker.add_argument("--task-queue", help="override OMNIHUB_TEMPORAL_TASK_QUEUE")
    worker.set_defaults(handler=_worker)

    bridge = sub.add_parser("saga-bridge", help="start and signal runs from Kafka events")
    bridge_sub = bridge.add_subparsers(dest="action", required=True)
    run = bridge_sub.add_parser("run", help="consume run events and drive the workflows")
    run.add_argument("--group", help="consumer group (default <topic_prefix>-saga-bridge)")
    run.add_argument(
        "--from-latest", action="store_true", help="a new group starts at the end, not the start"
    )
    run.set_defaults(handler=_bridge)


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


def _worker(args: argparse.Namespace) -> int:
    from sagas.worker import run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = get_settings()
    if args.task_queue:
        settings = settings.model_copy(update={"temporal_task_queue": args.task_queue})

    async def main() -> None:
        await run_worker(settings, _stop_on_signals())

    asyncio.run(main())
    return 0


def _bridge(args: argparse.Namespace) -> int:
    from streams.saga_bridge import run_bridge

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = get_settings()

    async def main() -> None:
        await run_bridge(
            settings, _stop_on_signals(), group_id=args.group, start_at_latest=args.from_latest
        )

    asyncio.run(main())
    return 0
