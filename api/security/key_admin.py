"""Key lifecycle as events, shared by the admin API and ``omnihub keys``.

Each function mints what it must (a new key's plaintext is returned once and only its
keyed hash enters the event) and returns the event to append; :func:`wait_for_key`
then waits, bounded, until the keys projection shows the change, so a key returned by
the API or the CLI works at once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

import asyncpg

from api.security import key_material
from api.security.tenancy import owner_connection
from domain import ids, scopes
from domain.events import ApiKeyCreated, ApiKeyRevoked, ApiKeyRotated, Event
from projections import keys
from projections.keys import StoredKey


def control_stream(tenant_id: str) -> str:
    """The stream (and Kafka key) of a tenant's key lifecycle events."""
    return f"control-{tenant_id}"


def _envelope(cls: type[Event], tenant_id: str, actor: str, *disc: str):  # type: ignore[no-untyped-def]
    stream = control_stream(tenant_id)
    return ids.envelope(
        cls, run_id=stream, tenant_id=tenant_id, actor=actor, correlation_id=str(uuid.uuid4()),
        discriminator=disc,
    )  # fmt: skip


def created(
    secret_key: str,
    tenant_id: str,
    scope_names: Iterable[str],
    *,
    actor: str,
    name: str = "",
    expires_at: datetime | None = None,
) -> tuple[ApiKeyCreated, str]:
    """The ``api_key_created`` event for a new key, and the key (shown once)."""
    granted = tuple(sorted(scopes.validate(scope_names)))
    new = key_material.generate(secret_key)
    key_id = str(uuid.uuid4())
    event = ApiKeyCreated(
        envelope=_envelope(ApiKeyCreated, tenant_id, actor, key_id),
        key_id=key_id,
        prefix=new.prefix,
        key_hash=new.key_hash,
        scopes=granted,
        name=name,
        expires_at=expires_at,
    )
    return event, new.plaintext


def rotated(
    secret_key: str, old: StoredKey, *, actor: str, grace: timedelta
) -> tuple[ApiKeyRotated, str]:
    """The ``api_key_rotated`` event replacing ``old`` (valid ``grace`` longer), and the
    new key (shown once)."""
    new = key_material.generate(secret_key)
    new_id = str(uuid.uuid4())
    return (
        ApiKeyRotated(
            envelope=_envelope(ApiKeyRotated, old.tenant_id, actor, old.key_id, new_id),
            key_id=old.key_id,
            new_key_id=new_id,
            new_prefix=new.prefix,
            new_key_hash=new.key_hash,
            scopes=old.scopes,
            old_key_expires_at=datetime.now(UTC) + grace,
            new_key_expires_at=old.expires_at if old.rotated_to is None else None,
        ),
        new.plaintext,
    )


def revoked(old: StoredKey, *, actor: str, reason: str) -> ApiKeyRevoked:
    """The ``api_key_revoked`` event for ``old``."""
    return ApiKeyRevoked(
        envelope=_envelope(ApiKeyRevoked, old.tenant_id, actor, old.key_id),
        key_id=old.key_id,
        prefix=old.prefix,
        reason=reason,
    )


async def wait_for_key(
    pool: asyncpg.Pool,
    key_id: str,
    ready: Callable[[StoredKey], bool],
    *,
    timeout_s: float,
    schema: str = "public",
) -> StoredKey | None:
    """The key once ``ready`` holds for it in the projection, or None after ``timeout_s``."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        async with owner_connection(pool, schema) as conn:
            found = await keys.by_id(conn, key_id)
        if found is not None and ready(found):
            return found
        if asyncio.get_running_loop().time() >= deadline:
            return None
        await asyncio.sleep(0.05)
