"""``omnihub audit verify``: recompute every tenant's audit chain from the log, and hold
it against the heads the chainer stored.

Verifying the log alone proves each record links to the one before; it cannot see that
the newest records were deleted. The chainer stores each tenant's head in Postgres only
after the record is in the log, so a log that ends before a stored head lost records.
The full head hashes are printed, to anchor outside OmniHub (a ticket, a notary, a
chain). Exit 1 on a broken or truncated chain, or for a tenant with no audit records.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime
from typing import Any

from apps.commands import audit_log
from apps.commands.tail import instant
from domain.audit_chain import ChainHead, missing_tail
from omnihub.settings import Settings, get_settings


def register(sub: Any) -> None:
    """Add ``audit verify``."""
    audit = sub.add_parser("audit", help="the hash-chained audit log", description=__doc__)
    cmds = audit.add_subparsers(dest="action", required=True)
    verify = cmds.add_parser("verify", help="recompute every tenant's chain from the log")
    which = verify.add_mutually_exclusive_group()
    which.add_argument("--tenant", help="only this tenant (exit 1 if it has no records)")
    which.add_argument(
        "--platform", action="store_true", help="only the platform chain (kill switches)"
    )
    verify.add_argument("--topic", help="audit topic (default: the declared one)")
    verify.add_argument(
        "--until", type=instant, help="the chain as of this time (no stored-head comparison)"
    )
    verify.add_argument("--json", action="store_true", help="one JSON document")
    verify.set_defaults(handler=_verify)
    audit_log.register(cmds)


async def stored_heads(settings: Settings, tenant: str | None) -> dict[str, ChainHead]:
    """The chainer's heads, from Postgres (none if the gateway never ran there)."""
    import asyncpg

    from apps.gateway import open_pool

    pool = await open_pool(settings)
    try:
        rows = await pool.fetch("SELECT tenant_id, sequence, hash FROM audit_chain_heads")
    except asyncpg.UndefinedTableError:
        rows = []
    finally:
        await pool.close()
    return {
        r["tenant_id"]: ChainHead(r["sequence"], r["hash"])
        for r in rows
        if (tenant is None or r["tenant_id"] == tenant) and r["sequence"] > 0
    }


def _verify(args: argparse.Namespace) -> int:
    from domain.audit_retention import PLATFORM, longest_retention_days
    from streams.audit_verify import describe, verify_topic
    from streams.codec import EventCodec
    from streams.schema_registry import SchemaRegistry
    from streams.topics import Topic, topic_name

    if args.platform:
        args.tenant = PLATFORM
    settings = get_settings()
    codec = EventCodec(SchemaRegistry.from_dir(settings.schemas_dir))
    topic = args.topic or topic_name(settings, Topic.AUDIT)
    # The log may have aged out its oldest records (the topic's retention).
    trimmed = settings.audit_retention_days > 0 or longest_retention_days() > 0
    result = asyncio.run(
        verify_topic(
            settings.kafka_bootstrap, codec, [topic], tenant=args.tenant,
            trimmed=trimmed, until=args.until,
        )
    )  # fmt: skip
    stored = {} if args.until else asyncio.run(stored_heads(settings, args.tenant))
    truncated = missing_tail(result.tenants, stored)
    unknown = args.tenant is not None and args.tenant not in result.tenants
    ok = result.ok and not truncated and not unknown
    if args.json:
        print(json.dumps(_document(result, truncated, args.until, ok), indent=2))
    else:
        for line in describe(result) or ["no audit records"]:
            print(line)
        for line in truncated:
            print(f"TRUNCATED {line}")
    if unknown:
        print(f"audit verify: no audit records for tenant {args.tenant!r}", file=sys.stderr)
    return 0 if ok else 1


def _document(result: Any, truncated: list[str], until: datetime | None, ok: bool) -> Any:
    return {
        "ok": ok,
        "until": until.isoformat() if until else None,
        "tenants": {
            tenant: {
                "records": r.records,
                "duplicates": r.duplicates,
                "head": {"sequence": r.head.sequence, "hash": r.head.hash},
                "anchored_at": r.anchored_at,
                "broken": None if r.broken is None else vars(r.broken),
            }
            for tenant, r in sorted(result.tenants.items())
        },
        "truncated": truncated,
        "foreign": result.foreign,
    }
