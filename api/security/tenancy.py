"""Tenant-scoped database access for the read API, backed by row-level security.

Every read runs in a read-only transaction that first drops to the ``omnihub_reader``
role (subject to RLS even if the pool logs in as the owner or a superuser) and declares
the caller's tenant; the policies of migration 0201 then hide every other tenant's rows,
whatever the query says.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from projections.migrate import quote_ident

READER_ROLE = "omnihub_reader"


@asynccontextmanager
async def tenant_connection(
    pool: asyncpg.Pool, tenant_id: str, schema: str = "public"
) -> AsyncIterator[asyncpg.Connection]:
    """A connection in a read-only transaction that sees only ``tenant_id``'s rows."""
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        await conn.execute(f"SET LOCAL ROLE {READER_ROLE}")
        await conn.execute(
            "SELECT set_config('omnihub.tenant_id', $1, true), set_config('search_path', $2, true)",
            tenant_id,
            f"{quote_ident(schema)}, public",
        )
        yield conn


@asynccontextmanager
async def owner_connection(
    pool: asyncpg.Pool, schema: str = "public"
) -> AsyncIterator[asyncpg.Connection]:
    """A read-only connection across tenants: only for authentication's key lookup and
    the gateway's own waits on its projections."""
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        await conn.execute(
            "SELECT set_config('search_path', $1, true)", f"{quote_ident(schema)}, public"
        )
        yield conn
