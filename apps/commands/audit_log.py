"""``omnihub audit export`` and ``omnihub audit expire``.

``export`` writes the chained records of a time range from the log, each with its hash,
sequence, prev_hash and place in the log (topic, partition, offset), as JSON Lines or
CSV; ``examples/verify_audit_export.py`` verifies such a file with the Python standard
library alone. ``expire`` enforces each tenant's audit retention (its tier) on the read
model by appending a chained checkpoint (see ``projections/audit_expiry.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from apps.commands.operator import add_as, operator_of
from apps.commands.tail import instant
from omnihub.settings import Settings, get_settings


def register(cmds: Any) -> None:
    """Add ``export`` and ``expire`` to the ``audit`` group."""
    export = cmds.add_parser("export", help="write chained records with their proofs")
    export.add_argument("--from", dest="since", type=instant, help="occurred at or after")
    export.add_argument("--to", dest="until", type=instant, help="occurred before")
    export.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    which = export.add_mutually_exclusive_group()
    which.add_argument("--tenant", help="only this tenant's chain (default: every chain)")
    which.add_argument("--platform", action="store_true", help="only the platform chain")
    export.add_argument("--output", "-o", type=Path, help="file to write (default: stdout)")
    export.set_defaults(handler=_export)
    expire = cmds.add_parser("expire", help="cut each chain at its tenant's retention")
    expire.add_argument("--tenant", help="only this tenant's chain")
    expire.add_argument("--now", type=instant, help="the job's time (default: now)")
    expire.add_argument("--dry-run", action="store_true", help="say what would expire")
    expire.add_argument(
        "--wait-s", type=float, default=30.0, help="wait this long for the read model"
    )
    add_as(expire)
    expire.set_defaults(handler=_expire)


def _export(args: argparse.Namespace) -> int:
    from domain.audit_retention import PLATFORM
    from streams.audit_export import export_lines, render
    from streams.codec import EventCodec
    from streams.schema_registry import SchemaRegistry
    from streams.topics import Topic, topic_name

    settings = get_settings()
    codec = EventCodec(SchemaRegistry.from_dir(settings.schemas_dir))
    chain = PLATFORM if args.platform else args.tenant
    lines = asyncio.run(
        export_lines(
            settings.kafka_bootstrap, codec, [topic_name(settings, Topic.AUDIT)],
            chain=chain, since=args.since, until=args.until,
        )
    )  # fmt: skip
    text = render(lines, args.format)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
        print(f"{len(lines)} records written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _expire(args: argparse.Namespace) -> int:
    plans, done = asyncio.run(_expire_async(get_settings(), args))
    for p in plans:
        days = "forever" if p.days <= 0 else f"{p.days} days"
        name = "platform" if p.chain == "*" else p.chain
        if p.cut is None:
            print(f"{name}: nothing to expire (tier {p.tier}, {days})")
        else:
            verb = "would expire" if args.dry_run else "expires"
            print(
                f"{name}: {verb} sequences up to {p.cut.through_sequence} (before "
                f"{p.cut.cut_before.isoformat()}; tier {p.tier}, {days}), checkpoint hash "
                f"{p.cut.through_hash}"
            )
    if not done:
        print("checkpoints appended, the read model has not applied them yet: are the "
              "gateway and the projector running?", file=sys.stderr)  # fmt: skip
        return 1
    return 0


async def _expire_async(settings: Settings, args: argparse.Namespace) -> tuple[Any, bool]:
    from apps.gateway import open_pool
    from projections.audit_expiry import expire, wait_expired
    from streams.admin import ensure_declared_topics
    from streams.codec import EventCodec
    from streams.producer import KafkaEventAppender
    from streams.schema_registry import SchemaRegistry

    await ensure_declared_topics(settings)
    pool = await open_pool(settings)
    appender = KafkaEventAppender(
        settings, EventCodec(SchemaRegistry.from_dir(settings.schemas_dir))
    )
    try:
        now = args.now or datetime.now(UTC)
        plans = await expire(
            pool, appender, now, actor=operator_of(args).actor, chain=args.tenant,
            dry_run=args.dry_run,
        )  # fmt: skip
        done = args.dry_run or await wait_expired(pool, plans, args.wait_s)
        return plans, done
    finally:
        await appender.stop()
        await pool.close()
