"""Reads of the audit read model (``audit_log``): pages, chain ranges, checkpoints,
and what the retention job needs. Small query functions; the caller's connection
decides which tenant's rows are visible (row-level security)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from domain.audit_retention import CHECKPOINT, checkpoint_through
from domain.entitlements import DEFAULT_SOURCE, effective
from domain.events import AuditRecorded, Envelope
from projections.tenant_tiers import load_state

COLUMNS = (
    "event_id, tenant_id, occurred_at, actor, category, action, outcome, subject, resource,"
    " details::text AS details, sequence, prev_hash, hash, run_id, causation_id, correlation_id"
)


@dataclass(frozen=True)
class AuditFilter:
    """What a page of one chain is narrowed to (None: anything)."""

    category: str | None = None
    action: str | None = None
    outcome: str | None = None
    subject: str | None = None
    since: datetime | None = None
    until: datetime | None = None


async def page(
    conn: asyncpg.Connection, chain: str, f: AuditFilter, before: int | None, limit: int
) -> tuple[list[dict[str, Any]], int | None]:
    """Up to ``limit`` rows of ``chain`` newest (highest sequence) first, below sequence
    ``before``; and the sequence to continue below, or None at the end."""
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM audit_log WHERE tenant_id = $1"
        " AND ($2::text IS NULL OR category = $2) AND ($3::text IS NULL OR action = $3)"
        " AND ($4::text IS NULL OR outcome = $4) AND ($5::text IS NULL OR subject = $5)"
        " AND ($6::timestamptz IS NULL OR occurred_at >= $6)"
        " AND ($7::timestamptz IS NULL OR occurred_at < $7)"
        " AND ($8::bigint IS NULL OR sequence < $8)"
        " ORDER BY sequence DESC LIMIT $9",
        chain, f.category, f.action, f.outcome, f.subject, f.since, f.until, before, limit + 1,
    )  # fmt: skip
    items = [_json_row(r) for r in rows[:limit]]
    more = len(rows) > limit
    return items, (items[-1]["sequence"] if more and items else None)


def _json_row(r: asyncpg.Record) -> dict[str, Any]:
    row = dict(r)
    row["details"] = json.loads(row["details"])
    return row


def record_of(row: asyncpg.Record | dict[str, Any]) -> AuditRecorded:
    """The chained record a row was projected from (for recomputing its hash)."""
    details = row["details"]
    return AuditRecorded(
        envelope=Envelope(
            event_id=row["event_id"],
            event_type=AuditRecorded.EVENT_TYPE,
            schema_version=AuditRecorded.SCHEMA_VERSION,
            run_id=row["run_id"] or "",
            tenant_id=row["tenant_id"],
            occurred_at=row["occurred_at"],
            causation_id=row["causation_id"],
            correlation_id=row["correlation_id"] or "",
            actor=row["actor"],
        ),
        category=row["category"],
        action=row["action"],
        outcome=row["outcome"],
        subject=row["subject"],
        resource=row["resource"],
        details=json.loads(details) if isinstance(details, str) else dict(details),
        sequence=row["sequence"],
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )


async def chain_range(
    conn: asyncpg.Connection, chain: str, lo: int, hi: int
) -> list[AuditRecorded]:
    """``chain``'s kept records with sequences ``lo`` to ``hi``, in order."""
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM audit_log WHERE tenant_id = $1 AND sequence BETWEEN $2 AND $3"
        " ORDER BY sequence",
        chain, lo, hi,
    )  # fmt: skip
    return [record_of(r) for r in rows]


async def hash_at(conn: asyncpg.Connection, chain: str, sequence: int) -> str | None:
    """The hash of ``chain``'s kept record at ``sequence``, if kept."""
    found: str | None = await conn.fetchval(
        "SELECT hash FROM audit_log WHERE tenant_id = $1 AND sequence = $2", chain, sequence
    )
    return found


async def checkpoints(conn: asyncpg.Connection, chain: str) -> dict[int, str]:
    """The kept checkpoints of ``chain``: through_sequence -> through_hash."""
    rows = await conn.fetch(
        "SELECT details::text AS details FROM audit_log"
        " WHERE tenant_id = $1 AND category = $2 AND action = $3",
        chain, *CHECKPOINT,
    )  # fmt: skip
    out = {}
    for r in rows:
        cut = checkpoint_through(*CHECKPOINT, json.loads(r["details"]))
        if cut is not None:
            out[cut[0]] = cut[1]
    return out


async def chains(conn: asyncpg.Connection) -> list[str]:
    """Every chain with kept records (the owner's view: all tenants)."""
    rows = await conn.fetch("SELECT DISTINCT tenant_id FROM audit_log WHERE sequence > 0")
    return sorted(r["tenant_id"] for r in rows)


async def expiry_candidates(
    conn: asyncpg.Connection, chain: str, cut_before: datetime
) -> Sequence[tuple[int, str, datetime]]:
    """``chain``'s kept records up to and including the first one at or after
    ``cut_before`` (sequence order): all :func:`domain.audit_retention.decide_cut` needs."""
    rows = await conn.fetch(
        "SELECT sequence, hash, occurred_at FROM audit_log WHERE tenant_id = $1"
        " AND sequence > 0 AND sequence <= coalesce((SELECT min(sequence) FROM audit_log"
        " WHERE tenant_id = $1 AND sequence > 0 AND occurred_at >= $2), 9223372036854775807)"
        " ORDER BY sequence",
        chain, cut_before,
    )  # fmt: skip
    return [(r["sequence"], r["hash"], r["occurred_at"]) for r in rows]


async def oldest_kept(conn: asyncpg.Connection, chain: str) -> int | None:
    """The lowest sequence ``chain`` still keeps."""
    found: int | None = await conn.fetchval(
        "SELECT min(sequence) FROM audit_log WHERE tenant_id = $1 AND sequence > 0", chain
    )
    return found


async def tier_of(conn: asyncpg.Connection, tenant: str, at: datetime) -> str | None:
    """The tier whose audit retention applies to ``tenant`` at ``at``: the tier of its
    subscription or membership (the tenant projection, ``projections.tenant_tiers``), or
    None when it holds neither (it is on the deployment's default tier): then
    :data:`domain.audit_retention.DEFAULT_RETENTION_DAYS` applies."""
    found = effective(await load_state(conn, tenant), at)
    return None if found.source == DEFAULT_SOURCE else found.tier
