"""Content checksums of the Postgres read models, to compare a rebuild with the live one."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from projections.migrate import quote_ident

# Every read-model table and the key that orders its rows for hashing.
CONTENT_TABLES: dict[str, str] = {
    "runs": "run_id",
    "run_events": "event_id",
    "approvals": "approval_id",
    "audit_log": "event_id",
    "kpi_minute": "tenant_id, minute",
    "kpi_run_durations": "run_id",
}


@dataclass(frozen=True)
class TableSum:
    rows: int
    md5: str


async def columns(conn: asyncpg.Connection, schema: str, table: str) -> list[str]:
    """The table's columns in order (a rebuild's shadow defines what is compared)."""
    rows = await conn.fetch(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
        schema,
        table,
    )
    return [r["column_name"] for r in rows]


async def table_sums(
    conn: asyncpg.Connection, schema: str, column_schema: str | None = None
) -> dict[str, TableSum]:
    """Row count and content MD5 of every read-model table in ``schema``.

    Columns are taken from ``column_schema`` (default ``schema``), so a live schema with
    columns added later by other migrations is compared on the rebuild's columns.
    """
    out = {}
    for table, key in CONTENT_TABLES.items():
        cols = await columns(conn, column_schema or schema, table)
        row = ", ".join(quote_ident(c) for c in cols)
        record = await conn.fetchrow(
            f"SELECT count(*) AS n, coalesce(md5(string_agg(md5(ROW({row})::text), ''"
            f" ORDER BY {key})), '') AS h FROM {quote_ident(schema)}.{table}"
        )
        assert record is not None
        out[table] = TableSum(record["n"], record["h"])
    return out
