"""``pg_record``: writes one JSON record to Postgres, exactly once per step.

The table (migration ``0300_saga_tool_records.sql``) has the step's idempotency key as
its primary key, so a retried write is a no-op. Compensation marks the record
compensated instead of deleting it: the audit trail keeps what was written and undone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import asyncpg

from domain.storable import storable
from omnihub.lazy import Lazy
from sagas.tools.base import JsonObject, ToolCall, ToolDomainError, ToolTransientError, require

INSERT = """
INSERT INTO saga_tool_records (idempotency_key, run_id, tenant_id, step_id, collection, record)
VALUES ($1, $2, $3, $4, $5, $6::jsonb)
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING created_at
"""
COMPENSATE = """
UPDATE saga_tool_records SET compensated_at = coalesce(compensated_at, now())
WHERE idempotency_key = $1
RETURNING compensated_at
"""


class PgRecordTool:
    """Inserts ``record`` into ``collection``; compensation marks it compensated."""

    name = "pg_record"
    compensation = "pg_record_compensate"
    description = 'Store a record. arguments: {"collection": "name", "record": {...JSON object}}.'

    def __init__(self, pool: Lazy[asyncpg.Pool]) -> None:
        self._pool = pool

    async def run(self, call: ToolCall) -> JsonObject:
        # jsonb and text hold no NUL: escaped (domain.storable), not refused.
        collection = storable(str(require(call.arguments, "collection", str)))
        record = storable(require(call.arguments, "record", dict))
        if not 0 < len(collection) <= 100:
            raise ToolDomainError("collection must be 1-100 characters")
        row = await self._fetchrow(
            INSERT,
            call.idempotency_key,
            call.run_id,
            call.tenant_id,
            call.step_id,
            collection,
            json.dumps(record),
        )
        # No row back: an earlier attempt already wrote it, which is the same outcome.
        return {"record_id": call.idempotency_key, "inserted": row is not None}

    async def compensate(self, call: ToolCall, result: Mapping[str, Any] | None) -> JsonObject:
        # By key, not by result: a step of unknown outcome (no result) is undone the same
        # way, and ``found`` is false when it never wrote.
        row = await self._fetchrow(COMPENSATE, call.idempotency_key)
        return {"record_id": call.idempotency_key, "found": row is not None}

    async def _fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        try:
            pool = await self._pool.get()
            async with pool.acquire() as conn:
                row: asyncpg.Record | None = await conn.fetchrow(query, *args)
                return row
        except (
            OSError,
            asyncpg.PostgresConnectionError,
            asyncpg.CannotConnectNowError,
        ) as exc:
            raise ToolTransientError(f"postgres unavailable: {exc!r}") from exc
        except asyncpg.PostgresError as exc:
            raise ToolDomainError(f"postgres refused the record: {exc}") from exc
