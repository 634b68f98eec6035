"""API keys of the caller's tenant: create, list, rotate, revoke.

A created or rotated key is returned once, here, and never again. Each change is an
event on the control topic; the route waits (bounded) until the keys projection shows
it, so the key works (or stops working) as soon as the response arrives. ``active``
false means the projection had not caught up in time; the change still happens. A key's
name is personal: the log and the projection hold it sealed, and these routes open it
(``[erased]`` once the tenant is erased).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, ConfigDict, Field

from api.deps import AppState, StateDep
from api.problems import Problem
from api.security import key_admin
from api.security.deps import require, security_of
from api.security.principal import Principal
from api.security.tenancy import tenant_connection
from api.text import Text
from domain import scopes
from domain.events import Event
from projections import keys
from projections.keys import StoredKey
from streams.privacy import open_fields

router = APIRouter(tags=["keys"])

KeysAdmin = Annotated[Principal, require("keys:admin")]
KeysRead = Annotated[Principal, require("keys:read")]


class KeyCreate(BaseModel):
    """A key to create for the caller's tenant."""

    model_config = ConfigDict(extra="forbid")

    scopes: list[str] = Field(
        min_length=1,
        max_length=20,
        description="Scopes to grant (an unknown one is a 422).",
        json_schema_extra={"items": {"type": "string", "enum": [*sorted(scopes.KNOWN_SCOPES)]}},
    )
    name: Text = Field(default="", max_length=100, description="What the key is for.")
    expires_in_s: int | None = Field(default=None, ge=60, le=400 * 86400)


class KeyRotate(BaseModel):
    """How long the old key keeps working after rotation."""

    model_config = ConfigDict(extra="forbid")

    grace_s: int = Field(default=3600, ge=0, le=30 * 86400)


class KeyRevoke(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Text = Field(default="", max_length=500)


class KeyInfo(BaseModel):
    """A key as listed: never the key or its hash."""

    key_id: str
    prefix: str
    scopes: list[str]
    name: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    rotated_to: str | None


class NewKeyOut(BaseModel):
    """A new key; ``key`` is shown only in this response."""

    key_id: str
    key: str
    prefix: str
    scopes: list[str]
    expires_at: datetime | None
    active: bool


async def _infos(state: AppState, found: list[StoredKey]) -> list[KeyInfo]:
    return [
        KeyInfo(
            **{f: getattr(k, f) for f in KeyInfo.model_fields if f != "scopes"},
            scopes=list(k.scopes),
        )
        for k in await open_fields(state.privacy, found, "name")
    ]


async def _append(state: AppState, event: Event) -> None:
    await state.appender.append(event)  # LogUnavailable: 503, api.problems


async def _own_key(state: AppState, p: Principal, key_id: str) -> StoredKey:
    pool = await state.postgres.get()
    async with tenant_connection(pool, p.tenant_id, state.settings.projections_schema) as conn:
        found = await keys.by_id(conn, key_id)
    if found is None:  # another tenant's key is as absent as a key that never existed
        raise Problem(404, "key-not-found", f"no key {key_id} in this tenant")
    return found


async def _wait(state: AppState, key_id: str, ready: Any) -> StoredKey | None:
    return await key_admin.wait_for_key(
        await state.postgres.get(),
        key_id,
        ready,
        timeout_s=state.settings.key_projection_wait_s,
        schema=state.settings.projections_schema,
    )


def _check_delegation(p: Principal, wanted: list[str] | tuple[str, ...]) -> None:
    try:
        scopes.validate(wanted)
    except scopes.UnknownScope as exc:
        raise Problem(422, "unknown-scope", str(exc)) from exc
    if not scopes.can_delegate(p.scopes, wanted):
        raise Problem(403, "scope-escalation", "a key cannot grant scopes it does not hold")


LAGGING: dict[int | str, dict[str, Any]] = {
    202: {"model": NewKeyOut, "description": "Appended; not yet usable (``active``)."}
}
NO_STORE = "no-store"  # the body holds a key's plaintext: no cache may keep it


@router.post(
    "/keys", status_code=status.HTTP_201_CREATED, response_model=NewKeyOut, responses=LAGGING
)
async def create_key(body: KeyCreate, p: KeysAdmin, state: StateDep, response: Response) -> Any:
    """Create a key for the caller's tenant; the key is shown once."""
    response.headers["Cache-Control"] = NO_STORE
    _check_delegation(p, body.scopes)
    expires = None
    if body.expires_in_s is not None:
        expires = datetime.now(UTC) + timedelta(seconds=body.expires_in_s)
    event, plaintext = key_admin.created(
        state.settings.secret_key,
        p.tenant_id,
        body.scopes,
        actor=p.actor,
        name=body.name,
        expires_at=expires,
    )
    await _append(state, event)
    seen = await _wait(state, event.key_id, lambda k: True)
    if seen is None:
        response.status_code = status.HTTP_202_ACCEPTED
    return NewKeyOut(
        key_id=event.key_id,
        key=plaintext,
        prefix=event.prefix,
        scopes=list(event.scopes),
        expires_at=expires,
        active=seen is not None,
    )


@router.get("/keys", response_model=list[KeyInfo])
async def list_keys(p: KeysRead, state: StateDep) -> Any:
    """Every key of the caller's tenant (no secrets)."""
    pool = await state.postgres.get()
    async with tenant_connection(pool, p.tenant_id, state.settings.projections_schema) as conn:
        found = await keys.list_keys(conn, p.tenant_id)
    return await _infos(state, found)


@router.post("/keys/{key_id}/rotate", status_code=201, response_model=NewKeyOut, responses=LAGGING)
async def rotate_key(
    key_id: Text, body: KeyRotate, p: KeysAdmin, state: StateDep, response: Response
) -> Any:
    """Replace a key; the old one works ``grace_s`` longer. The new key is shown once."""
    response.headers["Cache-Control"] = NO_STORE
    old = await _own_key(state, p, key_id)
    if old.revoked_at is not None:
        raise Problem(409, "key-revoked", "a revoked key cannot be rotated")
    _check_delegation(p, old.scopes)
    event, plaintext = key_admin.rotated(
        state.settings.secret_key, old, actor=p.actor, grace=timedelta(seconds=body.grace_s)
    )
    await _append(state, event)
    seen = await _wait(state, event.new_key_id, lambda k: True)
    security_of(state).authenticator.forget(old.prefix)
    if seen is None:
        response.status_code = status.HTTP_202_ACCEPTED
    return NewKeyOut(
        key_id=event.new_key_id,
        key=plaintext,
        prefix=event.new_prefix,
        scopes=list(event.scopes),
        expires_at=event.new_key_expires_at,
        active=seen is not None,
    )


@router.post("/keys/{key_id}/revoke", response_model=KeyInfo)
async def revoke_key(key_id: Text, body: KeyRevoke, p: KeysAdmin, state: StateDep) -> Any:
    """Revoke a key: it stops working at once (see api/security/principal.py)."""
    old = await _own_key(state, p, key_id)
    if old.revoked_at is None:
        await _append(state, key_admin.revoked(old, actor=p.actor, reason=body.reason))
    seen = await _wait(state, key_id, lambda k: k.revoked_at is not None)
    security_of(state).authenticator.forget(old.prefix)
    if seen is None:
        raise Problem(
            503,
            "projection-lagging",
            "revocation appended; not yet effective",
            headers={"Retry-After": "2"},
        )
    (info,) = await _infos(state, [seen])
    return info
