"""Row-level security on the real Postgres: a connection set to tenant A sees none of B's
rows whatever the query says, and every table with a tenant_id is covered."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from api.security.tenancy import tenant_connection
from omnihub.settings import get_settings
from projections.migrate import apply_migrations, quote_ident
from projections.tenancy import ensure_tenant_rls

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
async def schema() -> AsyncIterator[tuple[asyncpg.Pool, str]]:
    """A throwaway schema with every migration, holding rows of tenants A and B."""
    name = f"rls_{uuid.uuid4().hex[:10]}"
    pool = await asyncpg.create_pool(get_settings().postgres_dsn, min_size=1, max_size=3)
    async with pool.acquire() as conn:
        await apply_migrations(conn, schema=name)
        await ensure_tenant_rls(conn, name)  # what the gateway processor does at start
        await conn.execute(f"SET search_path = {quote_ident(name)}, public")
        for tenant in ("tenant-a", "tenant-b"):
            await _rows(conn, tenant)
        await conn.execute("RESET search_path")
    yield pool, name
    async with pool.acquire() as conn:
        await conn.execute(f"DROP SCHEMA {quote_ident(name)} CASCADE")
    await pool.close()


async def _rows(conn: asyncpg.Connection, tenant: str) -> None:
    await conn.execute(
        "INSERT INTO runs (run_id, tenant_id, status, created_at, updated_at, last_event_type)"
        " VALUES ($1, $2, 'running', $3, $3, 'goal_received')",
        f"run-{tenant}",
        tenant,
        NOW,
    )
    await conn.execute(
        "INSERT INTO approvals (approval_id, run_id, tenant_id, step_id, tool, risk, reasons,"
        " requested_at, expires_at, status) VALUES ($1, $2, $3, 's1', 'wire', 0.9, '[]', $4, $4,"
        " 'pending')",
        f"ap-{tenant}",
        f"run-{tenant}",
        tenant,
        NOW,
    )
    await conn.execute(
        "INSERT INTO api_keys (key_id, tenant_id, prefix, key_hash, scopes, created_at,"
        " created_by, updated_at) VALUES ($1, $2, $3, 'h', '{read}', $4, 'test', $4)",
        f"key-{tenant}",
        tenant,
        uuid.uuid4().hex[:8],
        NOW,
    )


async def test_a_raw_query_on_a_connection_set_to_a_returns_none_of_bs_rows(schema) -> None:  # type: ignore[no-untyped-def]
    pool, name = schema
    async with tenant_connection(pool, "tenant-a", name) as conn:
        for table in ("runs", "approvals", "api_keys"):
            tenants = {r["tenant_id"] for r in await conn.fetch(f"SELECT * FROM {table}")}
            assert tenants == {"tenant-a"}, table
        # Even a query that asks for B by name gets nothing.
        assert await conn.fetch("SELECT * FROM runs WHERE tenant_id = 'tenant-b'") == []
        assert (
            await conn.fetchval("SELECT count(*) FROM runs r JOIN approvals a USING (run_id)") == 1
        )


async def test_without_a_tenant_nothing_is_visible(schema) -> None:  # type: ignore[no-untyped-def]
    pool, name = schema
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL ROLE omnihub_reader")
        await conn.execute(f"SET LOCAL search_path = {quote_ident(name)}, public")
        assert await conn.fetchval("SELECT count(*) FROM runs") == 0


async def test_the_reader_cannot_write(schema) -> None:  # type: ignore[no-untyped-def]
    pool, name = schema
    with pytest.raises(asyncpg.PostgresError):
        async with tenant_connection(pool, "tenant-a", name) as conn:
            await conn.execute("UPDATE runs SET status = 'x' WHERE tenant_id = 'tenant-b'")


async def test_a_reader_login_cannot_escape_even_by_resetting_its_role(schema) -> None:  # type: ignore[no-untyped-def]
    """The deployment the README recommends: the API's pool logs in as a member of
    omnihub_reader, so not even injected SQL (RESET ROLE, SET ROLE) lifts the policy."""
    pool, name = schema
    await pool.execute(
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'omnihub_api_test')"
        " THEN CREATE ROLE omnihub_api_test LOGIN IN ROLE omnihub_reader; END IF; END $$"
    )
    dsn = get_settings().postgres_dsn.replace("://omnihub@", "://omnihub_api_test@")
    api = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    try:
        async with tenant_connection(api, "tenant-a", name) as conn:
            await conn.execute("RESET ROLE")
            assert {r["tenant_id"] for r in await conn.fetch("SELECT tenant_id FROM runs")} == {
                "tenant-a"
            }
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute("SET ROLE omnihub")
    finally:
        await api.close()


async def test_every_table_with_a_tenant_id_has_forced_rls_and_the_tenant_policy(schema) -> None:  # type: ignore[no-untyped-def]
    pool, name = schema
    rows = await pool.fetch(
        "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,"
        " EXISTS (SELECT 1 FROM pg_policies p WHERE p.schemaname = n.nspname"
        "         AND p.tablename = c.relname AND p.policyname = 'tenant_isolation') AS policy"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id'"
        " WHERE n.nspname = $1 AND c.relkind = 'r'",
        name,
    )
    assert len(rows) >= 6
    uncovered = [r["relname"] for r in rows if not (r[1] and r[2] and r[3])]
    assert uncovered == [], (
        f"tables with tenant_id but no row-level security: {uncovered}; end their migration "
        "with SELECT omnihub_apply_tenant_rls();"
    )
