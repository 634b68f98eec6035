"""The API keys read model: folded from key lifecycle events, read by authentication.

Folding is idempotent (a redelivered event changes nothing) and tenant-checked: a
rotation or revocation only touches a key of the tenant its event belongs to.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from domain.events import ApiKeyCreated, ApiKeyRevoked, ApiKeyRotated, Event

KEY_EVENTS = frozenset({"api_key_created", "api_key_rotated", "api_key_revoked"})

_INSERT = (
    "INSERT INTO api_keys (key_id, tenant_id, prefix, key_hash, scopes, name, created_at,"
    " created_by, expires_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $7)"
    " ON CONFLICT (key_id) DO NOTHING"
)


@dataclass(frozen=True)
class StoredKey:
    """A key as authentication and the admin API see it (never the key itself)."""

    key_id: str
    tenant_id: str
    prefix: str
    key_hash: str
    scopes: tuple[str, ...]
    name: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    rotated_to: str | None

    def usable_at(self, now: datetime) -> bool:
        """Neither revoked nor past its expiry (a rotated key's grace period) at ``now``."""
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


_COLUMNS = (
    "key_id, tenant_id, prefix, key_hash, scopes, name, created_at, created_by, expires_at,"
    " revoked_at, rotated_to"
)


def _stored(row: asyncpg.Record) -> StoredKey:
    return StoredKey(**{**dict(row), "scopes": tuple(row["scopes"])})


async def apply_key_event(conn: asyncpg.Connection, event: Event) -> None:
    """Fold one key lifecycle event into ``api_keys`` (inside the caller's transaction)."""
    env = event.envelope
    if isinstance(event, ApiKeyCreated):
        await conn.execute(
            _INSERT,
            event.key_id,
            env.tenant_id,
            event.prefix,
            event.key_hash,
            list(event.scopes),
            event.name,
            env.occurred_at,
            env.actor,
            event.expires_at,
        )
    elif isinstance(event, ApiKeyRotated):
        old = await conn.fetchrow(
            "SELECT name FROM api_keys WHERE key_id = $1 AND tenant_id = $2",
            event.key_id,
            env.tenant_id,
        )
        if old is None:
            return  # not this tenant's key: nothing to rotate
        await conn.execute(
            _INSERT,
            event.new_key_id,
            env.tenant_id,
            event.new_prefix,
            event.new_key_hash,
            list(event.scopes),
            old["name"],
            env.occurred_at,
            env.actor,
            event.new_key_expires_at,
        )
        await conn.execute(
            "UPDATE api_keys SET expires_at = LEAST(COALESCE(expires_at, $3), $3),"
            " rotated_to = $4, updated_at = $5 WHERE key_id = $1 AND tenant_id = $2",
            event.key_id,
            env.tenant_id,
            event.old_key_expires_at,
            event.new_key_id,
            env.occurred_at,
        )
    elif isinstance(event, ApiKeyRevoked):
        await conn.execute(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $3), revoked_reason ="
            " COALESCE(revoked_reason, $4), updated_at = $3 WHERE key_id = $1 AND tenant_id = $2",
            event.key_id,
            env.tenant_id,
            env.occurred_at,
            event.reason,
        )


async def by_prefix(conn: asyncpg.Connection | asyncpg.Pool, prefix: str) -> StoredKey | None:
    """The key with this public prefix, of any tenant (authentication's lookup)."""
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM api_keys WHERE prefix = $1", prefix)
    return _stored(row) if row else None


async def by_id(conn: asyncpg.Connection | asyncpg.Pool, key_id: str) -> StoredKey | None:
    """The key ``key_id`` (the caller scopes the connection to a tenant)."""
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM api_keys WHERE key_id = $1", key_id)
    return _stored(row) if row else None


async def list_keys(conn: asyncpg.Connection, tenant_id: str) -> list[StoredKey]:
    """Every key of ``tenant_id``, oldest first."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM api_keys WHERE tenant_id = $1 ORDER BY created_at, key_id",
        tenant_id,
    )
    return [_stored(r) for r in rows]
