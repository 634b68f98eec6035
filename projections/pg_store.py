"""The Postgres read models: folded batches written with their position, exactly once.

One transaction per (topic, partition) batch: lock the partition's position row, skip
records at or below it, fold the rest (pure, :mod:`projections.fold`), write the rows
and the new position, commit. A redelivered batch, a restarted processor or a second
instance that briefly owns the same partition during a rebalance therefore changes
nothing twice; Kafka's committed offsets are only where consumption resumes.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from domain.approval_view import ApprovalView
from domain.audit_retention import checkpoint_through
from domain.events import Event
from domain.fields import fields_of
from domain.kpis import COUNTERS
from domain.run_view import RunView
from projections.erasure import erase_runs
from projections.fold import ApplyResult, Changes, Folded, FoldShare, Loaded, fold_batch
from projections.migrate import quote_ident
from streams.consumer import Record
from streams.positions import PgPositions

RUN_COLUMNS = [f.name for f in dataclasses.fields(RunView)]
APPROVAL_COLUMNS = [f.name for f in dataclasses.fields(ApprovalView)]


def _upsert(table: str, columns: Sequence[str], key: str, jsonb: Sequence[str] = ()) -> str:
    values = ", ".join(f"${i}::jsonb" if c in jsonb else f"${i}" for i, c in enumerate(columns, 1))
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c != key)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({values}) "
        f"ON CONFLICT ({key}) DO UPDATE SET {updates}"
    )


# Postgres types of the columns written through unnest() (one array per column).
_TYPES = {
    **dict.fromkeys(("risk_score", "cache_similarity"), "float8"),
    "cache_hit": "bool",
    **dict.fromkeys(("created_at", "updated_at", "ended_at", "occurred_at"), "timestamptz"),
    **dict.fromkeys(("duration_ms", "sequence"), "int8"),
    **dict.fromkeys(
        (
            "seq",
            "steps_planned",
            "steps_started",
            "steps_completed",
            "steps_failed",
            "steps_compensated",
            "pending_approvals",
            "event_count",
        ),
        "int4",
    ),
    **dict.fromkeys(("payload", "details"), "jsonb"),
}


def _unnest_insert(table: str, columns: Sequence[str], conflict: str = "") -> str:
    """One INSERT for a whole batch: each column's values as one array parameter.

    One statement instead of one execution per row (executemany): the server plans and
    runs it once, and the client sends a handful of arrays.
    """
    arrays = ", ".join(f"${i}::{_TYPES.get(c, 'text')}[]" for i, c in enumerate(columns, 1))
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM unnest({arrays}) {conflict}"
    ).rstrip()


_RUN_UPSERT = _unnest_insert(
    "runs",
    RUN_COLUMNS,
    "ON CONFLICT (run_id) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in RUN_COLUMNS if c != "run_id"),
)
_APPROVAL_UPSERT = _upsert("approvals", APPROVAL_COLUMNS, "approval_id", ("reasons", "approvers"))
_TIMELINE_INSERT = _unnest_insert(
    "run_events",
    (
        "event_id",
        "run_id",
        "tenant_id",
        "seq",
        "event_type",
        "occurred_at",
        "actor",
        "summary",
        "payload",
    ),
)
_AUDIT_INSERT = _unnest_insert(
    "audit_log",
    (
        "event_id",
        "tenant_id",
        "occurred_at",
        "actor",
        "category",
        "action",
        "outcome",
        "subject",
        "resource",
        "details",
        "sequence",
        "prev_hash",
        "hash",
        "run_id",
        "causation_id",
        "correlation_id",
    ),
)
# A chained retention checkpoint expires the records it cuts (domain/audit_retention.py).
_AUDIT_EXPIRE = "DELETE FROM audit_log WHERE tenant_id = $1 AND sequence BETWEEN 1 AND $2"
_KPI_UPSERT = (
    f"INSERT INTO kpi_minute (tenant_id, minute, {', '.join(COUNTERS)}) "
    f"VALUES ($1, $2, {', '.join(f'${i}' for i in range(3, 3 + len(COUNTERS)))}) "
    "ON CONFLICT (tenant_id, minute) DO UPDATE SET "
    + ", ".join(f"{c} = kpi_minute.{c} + EXCLUDED.{c}" for c in COUNTERS)
)
_DURATION_INSERT = (
    "INSERT INTO kpi_run_durations (run_id, tenant_id, minute, duration_ms)"
    " VALUES ($1, $2, $3, $4) ON CONFLICT (run_id) DO NOTHING"
)


class PostgresProjection:
    """Writes folded batches into the read-model tables of one schema."""

    def __init__(
        self, projector: str = "postgres", schema: str = "public", share: FoldShare | None = None
    ) -> None:
        self.projector = projector
        self.schema = schema
        self._share = share  # where the next sink finds this fold (the projector's Redis)
        self._positions = PgPositions(projector)  # unqualified: the search_path picks it

    async def apply(
        self, conn: asyncpg.Connection, topic: str, partition: int, records: Sequence[Record]
    ) -> ApplyResult:
        """Fold and write ``records`` (one partition, ascending offsets) exactly once."""
        async with conn.transaction():
            # Asynchronous commit (this transaction only): the rows and the position still
            # commit together, so a crash can lose only the newest batches, both together,
            # and they are folded again from the log. The commit no longer waits for the
            # WAL flush while holding the shared kpi_minute rows every partition updates.
            await conn.execute(
                "SELECT set_config('search_path', $1, true),"
                " set_config('synchronous_commit', 'off', true)",
                f"{quote_ident(self.schema)}, public",
            )
            next_offset = await self._positions.lock(conn, topic, partition)
            fresh = [r for r in records if r.offset >= next_offset]
            if not fresh:
                return ApplyResult(0, len(records), 0)
            events = [r.event for r in fresh if r.event is not None]
            changes = fold_batch(await _load(conn, events), events)
            await _write(conn, changes)
            last = max((e.envelope.occurred_at for e in events), default=None)
            await self._positions.advance(conn, topic, partition, fresh[-1].offset + 1, last)
        if self._share is not None:  # committed: the fold is the state from now on
            self._share.offer(topic, partition, Folded(records, next_offset, changes))
        return ApplyResult(len(fresh), len(records) - len(fresh), changes.duplicates)

    async def positions(self, conn: asyncpg.Connection) -> dict[tuple[str, int], int]:
        """``(topic, partition) -> next offset`` of this projection."""
        found = await positions(conn, self.projector, self.schema)
        return {key: value[0] for key, value in found.items()}


async def _load(conn: asyncpg.Connection, events: Sequence[Event]) -> Loaded:
    ids = [e.envelope.event_id for e in events]
    run_ids = list({e.envelope.run_id for e in events})
    approval_ids = [a for e in events if (a := getattr(e, "approval_id", None))]
    applied = await conn.fetch(
        "SELECT event_id FROM run_events WHERE event_id = ANY($1::text[])"
        " UNION ALL SELECT event_id FROM audit_log WHERE event_id = ANY($1::text[])",
        ids,
    )
    runs = await conn.fetch(
        f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE run_id = ANY($1::text[])", run_ids
    )
    approvals = await conn.fetch(
        f"SELECT {', '.join(APPROVAL_COLUMNS)} FROM approvals WHERE approval_id = ANY($1::text[])",
        approval_ids,
    )
    return Loaded(
        runs={r["run_id"]: RunView(**dict(r)) for r in runs},
        approvals={a["approval_id"]: _approval(a) for a in approvals},
        applied_ids={r["event_id"] for r in applied},
    )


def _approval(row: asyncpg.Record) -> ApprovalView:
    data = dict(row)
    data["reasons"] = tuple(json.loads(data["reasons"]))
    data["approvers"] = tuple(json.loads(data["approvers"]))
    return ApprovalView(**data)


async def _write(conn: asyncpg.Connection, c: Changes) -> None:
    if c.runs:
        await _insert_columns(conn, _RUN_UPSERT, [_row(v) for v in c.runs.values()])
    if c.approvals:
        rows = [
            _row(v, reasons=json.dumps(list(v.reasons)), approvers=json.dumps(list(v.approvers)))
            for v in c.approvals.values()
        ]
        await conn.executemany(_APPROVAL_UPSERT, rows)
    if c.timeline:
        # jsonb keeps no key order: no sort_keys needed for the stored value
        rows = [(*_row(t)[:-1], json.dumps(t.payload)) for t in c.timeline]
        await _insert_columns(conn, _TIMELINE_INSERT, rows)
    if c.audit:
        rows = [
            (*_row(a)[:9], json.dumps(a.details), a.sequence, a.prev_hash, a.hash, a.run_id,
             a.causation_id, a.correlation_id)
            for a in c.audit
        ]  # fmt: skip
        await _insert_columns(conn, _AUDIT_INSERT, rows)
        for a in c.audit:
            cut = checkpoint_through(a.category, a.action, a.details)
            if cut is not None:
                await conn.execute(_AUDIT_EXPIRE, a.tenant_id, cut[0])
    if c.durations:
        await conn.executemany(_DURATION_INSERT, [_row(d) for d in c.durations])
    if c.kpis:
        # Every partition's batch adds to the same (tenant, minute) rows: lock them last
        # (shortest hold) and in one order (no deadlock between partitions).
        await conn.executemany(_KPI_UPSERT, [_row(c.kpis[k]) for k in sorted(c.kpis)])
    if c.erased_runs:
        await erase_runs(conn, c.erased_runs)


async def _insert_columns(
    conn: asyncpg.Connection, sql: str, rows: Sequence[tuple[Any, ...]]
) -> None:
    """Run an :func:`_unnest_insert` statement with ``rows`` turned into columns."""
    await conn.execute(sql, *(list(col) for col in zip(*rows, strict=True)))


def _row(obj: Any, **override: Any) -> tuple[Any, ...]:
    names, values = fields_of(type(obj))
    row = values(obj)
    if not override:
        return tuple(row)
    return tuple(override.get(n, v) for n, v in zip(names, row, strict=True))


async def positions(
    conn: asyncpg.Connection, projector: str = "postgres", schema: str = "public"
) -> dict[tuple[str, int], tuple[int, datetime | None, datetime]]:
    """``(topic, partition) -> (next_offset, event_time, applied_at)`` of a projector."""
    rows = await conn.fetch(
        f"SELECT topic, partition, next_offset, event_time, applied_at"
        f" FROM {quote_ident(schema)}.projector_positions WHERE projector = $1",
        projector,
    )
    return {
        (r["topic"], r["partition"]): (r["next_offset"], r["event_time"], r["applied_at"])
        for r in rows
    }
