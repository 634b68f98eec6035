"""The trusted devices read model: folded from device events, read by request signing.

Idempotent (a redelivered event changes nothing) and tenant-checked: a revocation only
touches a device of the tenant its event belongs to.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from domain.events import DeviceRegistered, DeviceRevoked, Event


@dataclass(frozen=True)
class StoredDevice:
    """A device as authentication and the admin API see it."""

    device_id: str
    tenant_id: str
    name: str
    public_key: str
    scopes: tuple[str, ...]
    first_seen_at: datetime
    registered_at: datetime
    registered_by: str
    revoked_at: datetime | None


_COLUMNS = (
    "device_id, tenant_id, name, public_key, scopes, first_seen_at, registered_at,"
    " registered_by, revoked_at"
)


def _stored(row: asyncpg.Record) -> StoredDevice:
    return StoredDevice(**{**dict(row), "scopes": tuple(row["scopes"])})


async def apply_device_event(conn: asyncpg.Connection, event: Event) -> None:
    """Fold one device event into ``trusted_devices`` (inside the caller's transaction)."""
    env = event.envelope
    if isinstance(event, DeviceRegistered):
        await conn.execute(
            f"INSERT INTO trusted_devices ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8,"
            " NULL) ON CONFLICT (device_id) DO NOTHING",
            event.device_id,
            env.tenant_id,
            event.name,
            event.public_key,
            list(event.scopes),
            event.first_seen_at,
            env.occurred_at,
            env.actor,
        )
    elif isinstance(event, DeviceRevoked):
        await conn.execute(
            "UPDATE trusted_devices SET revoked_at = COALESCE(revoked_at, $3),"
            " revoked_reason = COALESCE(revoked_reason, $4)"
            " WHERE device_id = $1 AND tenant_id = $2",
            event.device_id,
            env.tenant_id,
            env.occurred_at,
            event.reason,
        )


async def by_id(conn: asyncpg.Connection | asyncpg.Pool, device_id: str) -> StoredDevice | None:
    """The device ``device_id`` (authentication: any tenant; the API scopes the connection)."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM trusted_devices WHERE device_id = $1", device_id
    )
    return _stored(row) if row else None


async def list_devices(conn: asyncpg.Connection, tenant_id: str) -> list[StoredDevice]:
    """Every device of ``tenant_id``, oldest first, revoked ones included."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM trusted_devices WHERE tenant_id = $1"
        " ORDER BY registered_at, device_id",
        tenant_id,
    )
    return [_stored(r) for r in rows]
