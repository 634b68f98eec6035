"""Versioned Postgres migrations, applied in name order, each exactly once.

Files are ``projections/migrations/NNNN_name.sql``. Ranges: 0001-0099 projections,
0100-0199 plan cache, 0200-0299 gateway and tenancy, 0300-0399 saga tool tables,
0400-0499 privacy keys.

A file's statements should use unqualified names: each one runs with ``search_path``
set to the target schema (then ``public``, where extensions such as ``vector`` live),
so the same files build the live schema and a rebuild's shadow schema.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
TRACKING_TABLE = "omnihub_schema_migrations"
_NAME = re.compile(r"^(\d{4})_[A-Za-z0-9_]+\.sql$")
# An arbitrary constant: every migrator of one database serialises on it.
_LOCK_KEY = 0x0A11_7E57


class MigrationError(RuntimeError):
    """A migration failed, or an applied migration file was changed afterwards."""


@dataclass(frozen=True)
class Migration:
    """One SQL file: its name (``0001_projections.sql``), text and SHA-256."""

    name: str
    sql: str
    checksum: str

    @property
    def number(self) -> int:
        return int(self.name[:4])


def load_migrations(folder: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Every migration file in ``folder``, in name order."""
    found = []
    for path in sorted(folder.glob("*.sql")):
        if not _NAME.match(path.name):
            raise MigrationError(f"{path.name}: migration files are named NNNN_name.sql")
        data = path.read_bytes()
        found.append(Migration(path.name, data.decode(), hashlib.sha256(data).hexdigest()))
    return found


def projection_range(m: Migration) -> bool:
    """True for the projections' own migrations (0001-0099)."""
    return 1 <= m.number <= 99


async def apply_migrations(
    target: asyncpg.Connection | asyncpg.Pool,
    folder: Path = MIGRATIONS_DIR,
    *,
    schema: str = "public",
    select: Callable[[Migration], bool] | None = None,
) -> list[str]:
    """Apply every migration not yet applied to ``schema``; return the names applied.

    Each file runs in its own transaction with its name and checksum recorded in
    ``<schema>.omnihub_schema_migrations``. Concurrent callers wait on an advisory
    lock, so two processes starting together apply each file once. Raises
    :class:`MigrationError` if an applied file's checksum changed.
    """
    if isinstance(target, asyncpg.Pool):
        async with target.acquire() as conn:
            return await _apply(conn, folder, schema, select)
    return await _apply(target, folder, schema, select)


async def _apply(
    conn: asyncpg.Connection,
    folder: Path,
    schema: str,
    select: Callable[[Migration], bool] | None,
) -> list[str]:
    wanted = [m for m in load_migrations(folder) if select is None or select(m)]
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        applied = await _applied(conn, schema)
        _check_unchanged(wanted, applied)
        done = []
        for m in wanted:
            if m.name not in applied:
                await _run_one(conn, schema, m)
                done.append(m.name)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)


async def _applied(conn: asyncpg.Connection, schema: str) -> dict[str, str]:
    ident = quote_ident(schema)
    async with conn.transaction():
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {ident}")
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {ident}.{TRACKING_TABLE} ("
            " name text PRIMARY KEY, checksum text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
    rows = await conn.fetch(f"SELECT name, checksum FROM {ident}.{TRACKING_TABLE}")
    return {r["name"]: r["checksum"] for r in rows}


def _check_unchanged(wanted: Sequence[Migration], applied: dict[str, str]) -> None:
    changed = [m.name for m in wanted if applied.get(m.name, m.checksum) != m.checksum]
    if changed:
        raise MigrationError(
            f"applied migrations were edited afterwards: {', '.join(changed)}; "
            "add a new migration instead of changing an applied one"
        )


async def _run_one(conn: asyncpg.Connection, schema: str, m: Migration) -> None:
    ident = quote_ident(schema)
    try:
        async with conn.transaction():
            await conn.execute("SELECT set_config('search_path', $1, true)", f"{ident}, public")
            await conn.execute(m.sql)
            await conn.execute(
                f"INSERT INTO {ident}.{TRACKING_TABLE} (name, checksum) VALUES ($1, $2)",
                m.name,
                m.checksum,
            )
    except asyncpg.PostgresError as exc:
        raise MigrationError(f"{m.name} failed in schema {schema}: {exc}") from exc


def quote_ident(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


async def pending_migrations(conn: asyncpg.Connection, schema: str = "public") -> list[str]:
    """Migrations not yet applied in ``schema`` (or in ``public``, where the saga tools'
    tables live), and applied ones edited since: what a doctor reports."""
    applied = {**await _applied(conn, "public"), **await _applied(conn, schema)}
    wanted = load_migrations()
    edited = [f"{m.name} (edited)" for m in wanted if applied.get(m.name, m.checksum) != m.checksum]
    return [m.name for m in wanted if m.name not in applied] + edited
