"""Trusted devices of the caller's tenant: register, list, revoke (``admin``).

A device is an Ed25519 public key with a name, a first-seen time and scopes (never more
than the registering key holds). Requests it signs (``X-OmniHub-Device`` ...,
:mod:`domain.device_signature`) are accepted with those scopes while it is registered.
Each change is an event on the control topic (``device_registered``,
``device_revoked``); the route waits, bounded, until the projection shows it, so a
revoked device is refused as soon as the answer arrives. A device's name is personal:
the log and the projection hold it sealed, and these routes open it (``[erased]`` once
the tenant is erased).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Response, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from api.deps import AppState, StateDep
from api.problems import Problem
from api.security.deps import require, security_of
from api.security.principal import Principal
from api.security.tenancy import owner_connection, tenant_connection
from api.text import Text
from domain import ids, scopes
from domain.device_signature import valid_public_key
from domain.events import DeviceRegistered, DeviceRevoked, Event
from projections import devices
from projections.devices import StoredDevice
from streams.privacy import open_fields

router = APIRouter(tags=["devices"])

DevicesAdmin = Annotated[Principal, require("admin")]
DeviceId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class DeviceCreate(BaseModel):
    """A device to trust: its Ed25519 public key, a name, and what it may do."""

    model_config = ConfigDict(extra="forbid")

    public_key: str = Field(
        min_length=43, max_length=44, description="Ed25519 public key, 32 bytes base64url."
    )
    name: Text = Field(min_length=1, max_length=100)
    scopes: list[str] = Field(default=["read"], min_length=1, max_length=20)
    first_seen_at: AwareDatetime | None = Field(
        default=None, description="When the device was first seen (default: now)."
    )


class DeviceInfo(BaseModel):
    """A device as listed."""

    device_id: str
    name: str
    public_key: str
    scopes: list[str]
    first_seen_at: datetime
    registered_at: datetime
    registered_by: str
    revoked_at: datetime | None
    active: bool = Field(description="False until the projection shows it (202).")


def _info(d: StoredDevice, active: bool = True) -> DeviceInfo:
    fields = {f: getattr(d, f) for f in DeviceInfo.model_fields if f not in ("scopes", "active")}
    return DeviceInfo(**fields, scopes=list(d.scopes), active=active)


async def _opened(state: AppState, found: list[StoredDevice]) -> list[StoredDevice]:
    return await open_fields(state.privacy, found, "name")


def _envelope(cls: type[Event], p: Principal, device_id: str):  # type: ignore[no-untyped-def]
    return ids.envelope(
        cls,
        run_id=f"devices-{p.tenant_id}",
        tenant_id=p.tenant_id,
        actor=p.actor,
        correlation_id=str(uuid.uuid4()),
        discriminator=(device_id,),
    )


async def _wait(
    state: AppState, device_id: str, ready: Callable[[StoredDevice], bool]
) -> StoredDevice | None:
    """The device once ``ready`` holds for it in the projection, None after the wait."""
    pool, schema = await state.postgres.get(), state.settings.projections_schema
    deadline = asyncio.get_running_loop().time() + state.settings.key_projection_wait_s
    while True:
        async with owner_connection(pool, schema) as conn:
            found = await devices.by_id(conn, device_id)
        if found is not None and ready(found):
            return found
        if asyncio.get_running_loop().time() >= deadline:
            return None
        await asyncio.sleep(0.05)


@router.post(
    "/devices",
    status_code=status.HTTP_201_CREATED,
    response_model=DeviceInfo,
    responses={202: {"model": DeviceInfo, "description": "Appended; not yet active."}},
)
async def register_device(
    body: DeviceCreate, p: DevicesAdmin, state: StateDep, response: Response
) -> Any:
    """Trust a device: requests signed with its key act with its scopes."""
    if not valid_public_key(body.public_key):
        raise Problem(422, "invalid-public-key", "not a base64url Ed25519 public key")
    try:
        granted = scopes.validate(body.scopes)
    except scopes.UnknownScope as exc:
        raise Problem(422, "unknown-scope", str(exc)) from exc
    if not scopes.can_delegate(p.scopes, granted):
        raise Problem(403, "scope-escalation", "a device cannot get scopes its registrar lacks")
    device_id = str(uuid.uuid4())
    event = DeviceRegistered(
        envelope=_envelope(DeviceRegistered, p, device_id),
        device_id=device_id,
        name=body.name,
        public_key=body.public_key,
        scopes=tuple(sorted(granted)),
        first_seen_at=body.first_seen_at or datetime.now(UTC),
    )
    await state.appender.append(event)  # LogUnavailable: 503, api.problems
    seen = await _wait(state, device_id, lambda d: True)
    if seen is None:
        response.status_code = status.HTTP_202_ACCEPTED
        return DeviceInfo(
            device_id=device_id,
            name=event.name,
            public_key=event.public_key,
            scopes=list(event.scopes),
            first_seen_at=event.first_seen_at,
            registered_at=event.envelope.occurred_at,
            registered_by=p.actor,
            revoked_at=None,
            active=False,
        )
    (opened,) = await _opened(state, [seen])
    return _info(opened)


@router.get("/devices", response_model=list[DeviceInfo])
async def list_devices(p: DevicesAdmin, state: StateDep) -> Any:
    """Every device of the caller's tenant, revoked ones included."""
    pool = await state.postgres.get()
    async with tenant_connection(pool, p.tenant_id, state.settings.projections_schema) as conn:
        found = await devices.list_devices(conn, p.tenant_id)
    return [_info(d) for d in await _opened(state, found)]


@router.delete("/devices/{device_id}", response_model=DeviceInfo)
async def revoke_device(
    device_id: DeviceId, p: DevicesAdmin, state: StateDep, reason: str = ""
) -> Any:
    """Revoke a device: requests it signs are refused from now on."""
    pool = await state.postgres.get()
    async with tenant_connection(pool, p.tenant_id, state.settings.projections_schema) as conn:
        found = await devices.by_id(conn, device_id)
    if found is None:  # another tenant's device is as absent as one that never existed
        raise Problem(404, "device-not-found", f"no device {device_id} in this tenant")
    if found.revoked_at is None:
        event = DeviceRevoked(
            envelope=_envelope(DeviceRevoked, p, device_id),
            device_id=device_id,
            reason=reason[:500],
        )
        await state.appender.append(event)
    seen = await _wait(state, device_id, lambda d: d.revoked_at is not None)
    devices_auth = security_of(state).devices
    if devices_auth is not None:
        devices_auth.forget(device_id)
    if seen is None:
        raise Problem(
            503,
            "projection-lagging",
            "revocation appended; not yet effective",
            headers={"Retry-After": "2"},
        )
    (opened,) = await _opened(state, [seen])
    return _info(opened, active=False)
