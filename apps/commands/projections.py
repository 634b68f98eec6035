"""``omnihub projections rebuild|status|as-of``: the read models for operators and auditors."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from typing import Any

from apps.commands.operator import add_as, operator_of, record_operation
from omnihub.settings import Settings, get_settings

NAMES = ("postgres", "redis")


def register(sub: Any) -> None:
    projections = sub.add_parser("projections", help="rebuild or inspect the read models")
    p_sub = projections.add_subparsers(dest="action", required=True)
    rebuild = p_sub.add_parser(
        "rebuild", help="rebuild from the log beside the live one, verify, swap"
    )
    rebuild.add_argument("name", nargs="?", choices=NAMES, help="one projection (default all)")
    rebuild.add_argument("--verify-only", action="store_true", help="compare, do not swap")
    rebuild.add_argument(
        "--accept-changes",
        action="store_true",
        help="swap even if the rebuild differs (the fold changed on purpose)",
    )
    add_as(rebuild)
    rebuild.set_defaults(handler=_rebuild)
    status = p_sub.add_parser("status", help="per-partition positions and lag")
    status.add_argument("--json", action="store_true", help="one JSON document")
    status.set_defaults(handler=_status)
    as_of = p_sub.add_parser(
        "as-of",
        help="what the log held at a moment, folded afresh "
        "(for audits: reads Kafka, not the read models)",
    )
    as_of.add_argument(
        "--at",
        required=True,
        type=_instant,
        help="ISO 8601 time, e.g. 2026-11-22T10:00:00Z (no zone: UTC)",
    )
    which = as_of.add_mutually_exclusive_group()
    which.add_argument("--run", help="one run: its view and timeline")
    which.add_argument("--tenant", help="one tenant's runs")
    as_of.add_argument("--json", action="store_true", help="one JSON document")
    as_of.set_defaults(handler=_as_of)


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
        with Progress(
            *Progress.get_default_columns()[:-1],
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            transient=True,
        ) as progress:
            report = asyncio.run(
                fn(
                    settings,
                    swap=not args.verify_only,
                    accept_changes=args.accept_changes,
                    progress=_Bar(progress, f"rebuilding {name}"),
                )
            )
        verdict = "matches the live projection" if report.equal else "DIFFERS from live"
        action = "swapped in" if report.swapped else "not swapped"
        print(
            f"{name}: {report.events} events in {report.seconds:.1f}s "
            f"({report.events_per_s:.0f}/s); {verdict}; {action}"
        )
        for line in compared(report):
            print(f"  {line}")
        if report.poison:
            print(f"  {report.poison} records skipped: undecodable or unfoldable, dead-lettered"
                  " by the live projector already (see omnihub.deadletter.v1)")  # fmt: skip
        for line in report.differences:
            print(f"  {line}", file=sys.stderr)
        ok = ok and (report.equal or report.swapped)
        _record(settings, args, name, report)
    return 0 if ok else 1


def _record(settings: Settings, args: argparse.Namespace, name: str, report: Any) -> None:
    """Audit the rebuild (a swap changes what every reader sees) as its operator."""
    details = {
        "events": str(report.events),
        "equal": str(report.equal).lower(),
        "swapped": str(report.swapped).lower(),
        "verify_only": str(args.verify_only).lower(),
    }
    outcome = "success" if report.equal or report.swapped else "failure"
    asyncio.run(
        record_operation(
            settings,
            operator_of(args),
            "projection_rebuild",
            f"projection:{name}",
            details,
            outcome=outcome,
        )
    )


def compared(report: Any) -> list[str]:
    """What the verdict rests on: each table's rows and content checksum, both sides."""
    lines = []
    for key in sorted(set(report.live) | set(report.rebuilt)):
        if key == "positions":
            continue
        live, rebuilt = report.live.get(key), report.rebuilt.get(key)
        same = "same" if live == rebuilt else "DIFFERENT"
        lines.append(f"{key}: live {_sum(live)}, rebuilt {_sum(rebuilt)} ({same})")
    return lines


def _sum(value: Any) -> str:
    if isinstance(value, tuple) and len(value) == 2:
        return f"{value[0]} rows, md5 {value[1]}"
    return str(value)


def _instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _as_of(args: argparse.Namespace) -> int:
    from projections.as_of import known_at, report
    from projections.keyring import privacy_for
    from streams.codec import EventCodec
    from streams.schema_registry import SchemaRegistry
    from streams.topics import Topic, topic_name

    settings = get_settings()
    codec = EventCodec(SchemaRegistry.from_dir(settings.schemas_dir))
    known = asyncio.run(
        known_at(
            settings.kafka_bootstrap,
            codec,
            topic_name(settings, Topic.RUNS),
            args.at,
            run_id=args.run,
            tenant_id=args.tenant,
            privacy=privacy_for(settings, codec.registry),
        )
    )
    doc = report(known, with_timeline=args.run is not None)
    if args.json:
        print(json.dumps(doc, default=str, indent=2))
    else:
        for line in _lines(doc):
            print(line)
    if args.run and args.run not in known.runs:
        print(f"run {args.run} was not in the log at {args.at.isoformat()}", file=sys.stderr)
        return 1
    return 0


def _lines(doc: dict[str, Any]) -> list[str]:
    lines = [
        f"as of {doc['at']}: {len(doc['runs'])} runs from {doc['events']} events"
        + (f", {doc['unreadable']} unreadable records" if doc["unreadable"] else "")
    ]
    for run in doc["runs"]:
        lines.append(
            f"  {run['run_id']}  {run['tenant_id']}  {run['status']:<18} "
            f"steps {run['steps_completed']}/{run['steps_planned']}  "
            f"updated {run['updated_at']}"
        )
    for entry in doc["timeline"]:
        lines.append(
            f"    {entry['seq']:>3} {entry['occurred_at']} {entry['event_type']:<22}"
            f" {entry['summary']}"
        )
    for ap in doc["pending_approvals"]:
        lines.append(f"  pending approval {ap['approval_id']} ({ap['run_id']}, {ap['step_id']})")
    return lines


STATUS_COLUMNS = ("projection", "topic", "partition", "position", "end", "lag", "last_event")


def _status(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    rows = asyncio.run(_status_rows(get_settings()))
    if args.json:
        print(json.dumps([dict(zip(STATUS_COLUMNS, row, strict=True)) for row in rows],
                         default=str, indent=2))  # fmt: skip
        return 0
    table = Table(*STATUS_COLUMNS)
    for row in rows:
        table.add_row(*(str(c) if c is not None else "-" for c in row))
    Console(width=200).print(table)  # full topic names even in a narrow terminal
    return 0


async def _status_rows(settings: Settings) -> list[tuple[Any, ...]]:
    import asyncpg
    from redis.asyncio import Redis

    from projections.pg_store import positions
    from projections.redis_store import RedisProjection
    from streams.replay import end_offsets
    from streams.topics import topic_name
    from streams.topology import PROJECTOR

    ends = await end_offsets(
        settings.kafka_bootstrap, [topic_name(settings, t) for t in PROJECTOR.topics]
    )
    conn = await asyncpg.connect(settings.postgres_dsn)
    redis = Redis.from_url(settings.redis_url)
    try:
        try:
            pg = {
                k: (v[0], v[1])
                for k, v in (await positions(conn, schema=settings.projections_schema)).items()
            }
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
