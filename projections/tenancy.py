"""Row-level security for every tenant table, re-applied after migrations.

Migration 0201 defines ``omnihub_apply_tenant_rls()`` and runs it once; migrations that
come later (in number order, so possibly after 0201 on a fresh database) may add tables
with a ``tenant_id``. :func:`ensure_tenant_rls` runs the function again; the gateway
processor calls it at start, right after applying migrations, so no tenant table is
left uncovered.
"""

from __future__ import annotations

import asyncpg

from projections.migrate import quote_ident


async def ensure_tenant_rls(conn: asyncpg.Connection, schema: str = "public") -> int:
    """Apply the tenant policy to every tenant table of ``schema``; how many it covers."""
    async with conn.transaction():
        await conn.execute(
            "SELECT set_config('search_path', $1, true)", f"{quote_ident(schema)}, public"
        )
        count: int = await conn.fetchval("SELECT omnihub_apply_tenant_rls()")
    return count
