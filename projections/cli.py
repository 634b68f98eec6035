"""``omnihub projector run`` and ``omnihub projections rebuild|status``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Any

from omnihub.settings import Settings, get_settings

NAMES = ("postgres", "redis")


def register(sub: Any) -> None:
    projector = sub.add_parser("projector", help="the stream processor that feeds read models")
    projector_sub = projector.add_subparsers(dest="action", required=True)
    run = projector_sub.add_parser("run", help="fold the log into Postgres and Redis")
    run.add_argument("--instance-id", help="static group membership id (fast restarts)")
    run.set_defaults(handler=_run)

    projections = sub.add_parser("projections", help="rebuild or inspect the read models")
    p_sub = projections.add_subparsers(dest="action", required=True)
    rebuild = p_sub.add_parser("rebuild", help="rebuild from the log beside the live one, "
                               "verify, swap")
    rebuild.add_argument("name", nargs="?", choices=NAMES, help="one projection (default all)")
    rebuild.add_argument("--verify-only", action="store_true", help="compare, do not swap")
    rebuild.add_argument("--accept-changes", action="store_true",
                         help="swap even if the rebuild differs (the fold changed on purpose)")
    rebuild.set_defaults(handler=_rebuild)
    p_sub.add_parser("status", help="per-partition positions and lag").set_defaults(
        handler=_status)


def _run(args: argparse.Namespace) -> int:
    from streams.processors.app import run_projector

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    settings = get_settings()
    if args.instance_id:
        settings = settings.model_copy(update={"projector_instance_id": args.instance_id})
    asyncio.run(run_projector(settings))
    return 0


class _Bar:
    """A rich progress bar as :class:`projections.rebuild.Progress`."""

    def __init__(self, progress: Any, label: str) -> None:
        self._progress = progress
        self._task = progress.add_task(label, total=0)

    def add_total(self, n: int) -> None:
        total = self._progress.tasks[self._task].total or 0
        self._progress.update(self._task, total=total + n)

    def advance(self, n: int) -> None:
        self._progress.advance(self._task, n)


def _rebuild(args: argparse.Namespace) -> int:
    from rich.progress import MofNCompleteColumn, Progress, TimeRemainingColumn

    from projections.rebuild import rebuild_postgres, rebuild_redis

    settings = get_settings()
    ok = True
    for name in [args.name] if args.name else NAMES:
        fn = rebuild_postgres if name == "postgres" else rebuild_redis
        with Progress(*Progress.get_default_columns()[:-1], MofNCompleteColumn(),
                      TimeRemainingColumn(), transient=True) as progress:
            report = asyncio.run(fn(settings, swap=not args.verify_only,
                                    accept_changes=args.accept_changes,
                                    progress=_Bar(progress, f"rebuilding {name}")))
        verdict = "matches the live projection" if report.equal else "DIFFERS from live"
        action = "swapped in" if report.swapped else "not swapped"
        print(f"{name}: {report.events} events in {report.seconds:.1f}s "
              f"({report.events_per_s:.0f}/s); {verdict}; {action}")
        for line in report.differences:
            print(f"  {line}", file=sys.stderr)
        ok = ok and (report.equal or report.swapped)
    return 0 if ok else 1


def _status(_: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    rows = asyncio.run(_status_rows(get_settings()))
    table = Table("projection", "topic", "partition", "position", "end", "lag", "last event")
    for row in rows:
        table.add_row(*(str(c) if c is not None else "-" for c in row))
    Console().print(table)
    return 0


async def _status_rows(settings: Settings) -> list[tuple[Any, ...]]:
    import asyncpg
    from redis.asyncio import Redis

    from projections.pg_store import positions
    from projections.redis_store import RedisProjection
    from streams.processors.app import PROJECTED_TOPICS
    from streams.processors.replay import end_offsets
    from streams.topics import topic_name

    ends = await end_offsets(settings.kafka_bootstrap,
                             [topic_name(settings, t) for t in PROJECTED_TOPICS])
    conn = await asyncpg.connect(settings.postgres_dsn)
    redis = Redis.from_url(settings.redis_url)
    try:
        try:
            pg = {k: (v[0], v[1]) for k, v in
                  (await positions(conn, schema=settings.projections_schema)).items()}
        except asyncpg.UndefinedTableError:
            pg = {}
        rd = await RedisProjection.of(redis, settings).positions()
    finally:
        await conn.close()
        await redis.aclose()
    rows = []
    for name, pos in (("postgres", pg), ("redis", rd)):
        for (topic, part), end in sorted(ends.items()):
            at, when = pos.get((topic, part), (0, None))
            rows.append((name, topic, part, at, end, end - at, when))
    return rows
