"""Every read of the Postgres read models, as small functions taking a connection.

The caller picks the schema (``search_path``) and, later, the tenant
(``omnihub.tenant_id`` for row-level security); see :func:`projection_conn`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import asyncpg

from projections.migrate import quote_ident

Row = dict[str, Any]


@asynccontextmanager
async def projection_conn(pool: asyncpg.Pool, schema: str = "public") -> AsyncIterator[
        asyncpg.Connection]:
    """A pooled connection in a read-only transaction whose search path is ``schema``."""
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        await conn.execute("SELECT set_config('search_path', $1, true)",
                           f"{quote_ident(schema)}, public")
        yield conn


def _row(record: asyncpg.Record, *jsonb: str) -> Row:
    out = dict(record)
    for key in jsonb:
        if isinstance(out.get(key), str):
            out[key] = json.loads(out[key])
    return out


def _approval_row(record: asyncpg.Record) -> Row:
    """An approval with its JSON decoded: ``arguments`` and ``inputs`` are objects."""
    out = _row(record, "reasons", "approvers")
    for key in ("arguments", "inputs"):
        text = out.pop(f"{key}_json", None)
        out[key] = json.loads(text) if isinstance(text, str) else None
    return out


def encode_cursor(created_at: datetime, key: str) -> str:
    raw = json.dumps([created_at.isoformat(), key]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (time, id) a cursor points after; raises ValueError if malformed."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, key = json.loads(raw)
        return datetime.fromisoformat(at), str(key)
    except Exception as exc:
        raise ValueError("malformed cursor") from exc


async def get_run(conn: asyncpg.Connection, run_id: str) -> Row | None:
    """One run, or None."""
    record = await conn.fetchrow("SELECT * FROM runs WHERE run_id = $1", run_id)
    return _row(record) if record else None


async def run_timeline(conn: asyncpg.Connection, run_id: str) -> list[Row]:
    """A run's events in order."""
    rows = await conn.fetch(
        "SELECT seq, event_id, event_type, occurred_at, actor, summary, payload"
        " FROM run_events WHERE run_id = $1 ORDER BY seq", run_id)
    return [_row(r, "payload") for r in rows]


async def list_runs(
    conn: asyncpg.Connection,
    *,
    tenant_id: str | None = None,
    status: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after: tuple[datetime, str] | None = None,
    limit: int = 50,
) -> tuple[list[Row], str | None]:
    """Runs newest first, filtered; returns the page and the next page's cursor."""
    where: list[str] = ["true"]
    args: list[Any] = []
    for clause, value in (("tenant_id = ${}", tenant_id), ("status = ${}", status),
                          ("created_at >= ${}", since), ("created_at < ${}", until)):
        if value is not None:
            args.append(value)
            where.append(clause.format(len(args)))
    if after is not None:
        args += [after[0], after[1]]
        where.append(f"(created_at, run_id) < (${len(args) - 1}, ${len(args)})")
    args.append(limit + 1)
    rows = await conn.fetch(
        f"SELECT * FROM runs WHERE {' AND '.join(where)}"
        f" ORDER BY created_at DESC, run_id DESC LIMIT ${len(args)}", *args)
    page = [_row(r) for r in rows[:limit]]
    more = len(rows) > limit
    return page, encode_cursor(page[-1]["created_at"], page[-1]["run_id"]) if more else None


async def get_approval(conn: asyncpg.Connection, approval_id: str) -> Row | None:
    """One approval (with its run and tenant), or None."""
    record = await conn.fetchrow("SELECT * FROM approvals WHERE approval_id = $1", approval_id)
    return _approval_row(record) if record else None


async def list_approvals(
    conn: asyncpg.Connection,
    *,
    tenant_id: str | None = None,
    status: str | None = "pending",
    after: tuple[datetime, str] | None = None,
    limit: int = 50,
) -> tuple[list[Row], str | None]:
    """Approvals oldest request first (the queue order); cursor paginated."""
    where: list[str] = ["true"]
    args: list[Any] = []
    for clause, value in (("tenant_id = ${}", tenant_id), ("status = ${}", status)):
        if value is not None:
            args.append(value)
            where.append(clause.format(len(args)))
    if after is not None:
        args += [after[0], after[1]]
        where.append(f"(requested_at, approval_id) > (${len(args) - 1}, ${len(args)})")
    args.append(limit + 1)
    rows = await conn.fetch(
        f"SELECT * FROM approvals WHERE {' AND '.join(where)}"
        f" ORDER BY requested_at, approval_id LIMIT ${len(args)}", *args)
    page = [_approval_row(r) for r in rows[:limit]]
    more = len(rows) > limit
    last = page[-1] if page else None
    return page, encode_cursor(last["requested_at"], last["approval_id"]) if more and last else None


async def kpis(
    conn: asyncpg.Connection,
    *,
    tenant_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 1440,
) -> list[Row]:
    """KPI roll-ups per tenant per minute, newest first, with run duration p50/p95 and the
    plan cache's hit rate and saved model calls."""
    rows = await conn.fetch(
        "SELECT k.tenant_id, k.minute, k.goals, k.completions, k.failures, k.cancellations,"
        " k.compensations, k.cache_hits, k.plans, k.model_calls,"
        " k.cache_hits AS saved_model_calls,"
        " round(k.cache_hits::numeric / nullif(k.plans, 0), 4)::float8 AS cache_hit_rate,"
        " d.runs_finished, d.p50, d.p95"
        " FROM kpi_minute k LEFT JOIN LATERAL ("
        "   SELECT count(*) AS runs_finished,"
        "     percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) AS p50,"
        "     percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) AS p95"
        "   FROM kpi_run_durations r WHERE r.tenant_id = k.tenant_id AND r.minute = k.minute"
        " ) d ON true"
        " WHERE ($1::text IS NULL OR k.tenant_id = $1)"
        " AND ($2::timestamptz IS NULL OR k.minute >= $2)"
        " AND ($3::timestamptz IS NULL OR k.minute < $3)"
        " ORDER BY k.minute DESC, k.tenant_id LIMIT $4",
        tenant_id, since, until, limit)
    return [_row(r) for r in rows]


async def freshness(conn: asyncpg.Connection, projector: str = "postgres") -> list[Row]:
    """The projector's position per partition: next offset, last event and apply time."""
    rows = await conn.fetch(
        "SELECT topic, partition, next_offset, event_time, applied_at"
        " FROM projector_positions WHERE projector = $1 ORDER BY topic, partition", projector)
    return [_row(r) for r in rows]
