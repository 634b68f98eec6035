"""The pg_record tool against the real Postgres: a model's record holding NUL (which
``jsonb`` and ``text`` refuse) is stored escaped, not failed on every retry."""

from __future__ import annotations

import json
import uuid

import asyncpg
import pytest

from omnihub.lazy import Lazy
from omnihub.settings import get_settings
from projections.migrate import apply_migrations, quote_ident
from sagas.tools.base import ToolCall, ToolDomainError
from sagas.tools.pg_record import PgRecordTool


async def test_a_record_with_nul_is_stored_escaped() -> None:
    schema = f"pgrec_{uuid.uuid4().hex[:10]}"
    dsn = get_settings().postgres_dsn
    admin = await asyncpg.connect(dsn)
    await admin.execute(f"CREATE SCHEMA {quote_ident(schema)}")
    pool = await asyncpg.create_pool(
        dsn, min_size=1, max_size=2, server_settings={"search_path": schema}
    )
    try:
        await apply_migrations(pool, schema=schema, select=lambda m: 300 <= m.number < 400)
        tool = PgRecordTool(Lazy(lambda: _same(pool)))
        call = ToolCall(
            "run-1",
            "t",
            "s1",
            1,
            f"idem-{uuid.uuid4()}",
            {"collection": "notes\x00", "record": {"text": "a\x00b", "k\x00": [1]}},
        )
        assert (await tool.run(call))["inserted"] is True
        row = await pool.fetchrow("SELECT collection, record FROM saga_tool_records")
        assert row["collection"] == "notes\\u0000"
        assert json.loads(row["record"]) == {"text": "a\\u0000b", "k\\u0000": [1]}
    finally:
        await pool.close()
        await admin.execute(f"DROP SCHEMA {quote_ident(schema)} CASCADE")
        await admin.close()


async def _same(pool: asyncpg.Pool) -> asyncpg.Pool:
    return pool


async def test_a_refusal_by_postgres_is_a_domain_error_not_a_crash() -> None:
    # Before: the except clause named an asyncpg class that does not exist, so any
    # Postgres error became an AttributeError.
    pool = await asyncpg.create_pool(
        get_settings().postgres_dsn,
        min_size=1,
        max_size=1,
        server_settings={"search_path": f"nowhere_{uuid.uuid4().hex[:8]}"},
    )
    try:
        tool = PgRecordTool(Lazy(lambda: _same(pool)))
        call = ToolCall("run-1", "t", "s1", 1, "idem", {"collection": "c", "record": {}})
        with pytest.raises(ToolDomainError, match="postgres refused"):
            await tool.run(call)
    finally:
        await pool.close()
