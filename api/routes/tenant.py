"""The caller's tenant and its tier; the operators' route that sets a subscription.

``GET /tenant`` reads the tenant projection (:mod:`projections.tenant_tiers`) and
evaluates the tier now: the tier, where it comes from, until when, each entitlement
with its source, and every source the tenant has. ``PUT /admin/tenants/{tenant_id}/tier``
needs ``platform:tiers``, a scope no tenant's ``admin`` implies (a tenant cannot raise
its own tier); it appends ``subscription_changed`` (audited by the chain) and waits,
bounded, until the gateway has folded it and API caches have had time to see it.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Path
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from api.deps import AppState, StateDep
from api.problems import Problem
from api.security.deps import require
from api.security.principal import Principal
from api.security.tenancy import owner_connection, tenant_connection
from api.text import Text
from domain.entitlements import effective, subscription_change
from domain.scopes import TENANT_PATTERN
from domain.tenant_view import sources
from domain.tiers import TierName
from projections.tenant_tiers import load_state, subscription_event_id

router = APIRouter(tags=["tenant"])

TenantReader = Annotated[Principal, require("tenant:read")]
TierAdmin = Annotated[Principal, require("platform:tiers")]
Value = int | bool | list[int] | None


class GrantOut(BaseModel):
    value: Value = Field(description="The limit; null is unlimited (a range is [least, most]).")
    source: str


class SourceOut(BaseModel):
    source: str = Field(description="default, subscription, or membership:<chain>:<contract>:<id>")
    tier: TierName
    expires_at: datetime | None
    active: bool
    wallet: str | None = None


class TenantOut(BaseModel):
    """The tenant's effective tier now, and where each part of it comes from."""

    tenant_id: str
    tier: TierName
    source: str
    expires_at: datetime | None = Field(description="When this source ends (null: no end).")
    evaluated_at: datetime
    entitlements: dict[str, GrantOut]
    sources: list[SourceOut]


def _value(value: object) -> Value:
    return list(value) if isinstance(value, tuple) else value  # type: ignore[return-value]


async def _read(pool: asyncpg.Pool, tenant_id: str, schema: str) -> Any:
    try:
        async with tenant_connection(pool, tenant_id, schema) as conn:
            return await load_state(conn, tenant_id)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise Problem(503, "read-model-unavailable", "cannot read the tenant projection") from exc


@router.get("/tenant", response_model=TenantOut)
async def get_tenant(p: TenantReader, state: StateDep) -> Any:
    """The caller's tenant: its tier now, each entitlement and its source."""
    facts = await _read(await state.postgres.get(), p.tenant_id, state.settings.projections_schema)
    now = datetime.now(UTC)
    default = state.settings.default_tier
    tier = effective(facts, now, default)
    return TenantOut(
        tenant_id=p.tenant_id,
        tier=tier.tier,
        source=tier.source,
        expires_at=tier.until,
        evaluated_at=now,
        entitlements={
            k: GrantOut(value=_value(g.value), source=g.source)
            for k, g in tier.entitlements.items()
        },
        sources=[SourceOut(**vars(s)) for s in sources(facts, now, default)],
    )


class TierChange(BaseModel):
    """The tenant's new subscription."""

    model_config = ConfigDict(extra="forbid")

    tier: TierName
    expires_at: AwareDatetime | None = Field(default=None, description="Null: no end.")
    reason: Text = Field(min_length=1, max_length=500)


class TierChangeOut(BaseModel):
    tenant_id: str
    tier: TierName
    expires_at: datetime | None
    event_id: str
    applied: bool = Field(description="Whether the gateway's checks already see it.")


async def _applied(state: AppState, tenant_id: str, event_id: str) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + state.settings.key_projection_wait_s
    while True:
        try:
            async with owner_connection(
                await state.postgres.get(), state.settings.projections_schema
            ) as conn:
                if await subscription_event_id(conn, tenant_id) == event_id:
                    # An API process may check with facts read before now for this long.
                    await asyncio.sleep(state.settings.tier_cache_ttl_s)
                    return True
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            pass  # keep waiting: the change is in the log either way
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.05)


@router.put("/admin/tenants/{tenant_id}/tier", response_model=TierChangeOut)
async def set_tier(
    tenant_id: Annotated[str, Path(pattern=TENANT_PATTERN)],
    body: TierChange,
    p: TierAdmin,
    state: StateDep,
) -> Any:
    """Set a tenant's subscription tier (platform operators only)."""
    event = subscription_change(
        tenant_id,
        body.tier,
        actor=p.actor,
        reason=body.reason,
        expires_at=body.expires_at,
        request_id=str(uuid.uuid4()),
    )
    await state.appender.append(event)  # LogUnavailable: 503, api.problems
    applied = await _applied(state, tenant_id, event.envelope.event_id)
    return TierChangeOut(
        tenant_id=tenant_id,
        tier=body.tier,
        expires_at=body.expires_at,
        event_id=event.envelope.event_id,
        applied=applied,
    )
