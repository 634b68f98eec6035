"""Emergency controls: platform-wide kill switches, toggled as events.

Toggling needs ``platform:killswitch``, a scope no tenant's ``admin`` implies: a switch
stops a feature for every tenant. The route appends ``kill_switch_toggled`` and waits
(bounded) until the Redis view the API and the sagas read shows it, then for as long as
an API process may keep an older copy (``killswitch_cache_ttl_s``). The reason is
personal (the log and ``kill_switches`` hold it sealed with the toggling principal's
tenant's key): the listing opens it, ``[erased]`` once that tenant is erased.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field
from redis.exceptions import RedisError

from api.deps import AppState, StateDep
from api.problems import Problem
from api.security.deps import require
from api.security.principal import Principal
from api.security.tenancy import owner_connection
from api.text import Text
from domain import ids
from domain.events import KillSwitchToggled
from domain.killswitch import FEATURES
from projections import killswitch
from streams.privacy import open_fields

router = APIRouter(tags=["admin"])

KillSwitchAdmin = Annotated[Principal, require("platform:killswitch")]
FEATURE_PATTERN = r"^[a-z0-9][a-z0-9_.:-]{0,127}$"


class SwitchChange(BaseModel):
    """The feature's new state: ``enabled: false`` engages the kill switch."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool
    reason: Text = Field(min_length=1, max_length=500)


class SwitchOut(BaseModel):
    feature: str
    enabled: bool
    reason: str
    applied: bool = Field(description="Whether the API and sagas already see it.")


async def _applied(state: AppState, feature: str, enabled: bool) -> bool:
    deadline = asyncio.get_running_loop().time() + state.settings.key_projection_wait_s
    while True:
        try:
            if await killswitch.is_engaged(state.redis, feature) is not enabled:
                # An API process may serve a copy read before now for this long.
                await asyncio.sleep(state.settings.killswitch_cache_ttl_s)
                return True
        except RedisError:
            pass  # keep waiting: the switch is in the log either way
        if asyncio.get_running_loop().time() >= deadline:
            return False
        await asyncio.sleep(0.05)


@router.put("/admin/kill-switches/{feature}", response_model=SwitchOut)
async def toggle(
    feature: Annotated[str, Path(pattern=FEATURE_PATTERN)],
    body: SwitchChange,
    p: KillSwitchAdmin,
    state: StateDep,
) -> Any:
    """Switch a feature off (``enabled: false``) or back on, for every tenant."""
    if feature not in FEATURES:  # a typo would engage nothing and still look applied
        raise Problem(
            422,
            "unknown-kill-switch",
            f"path.feature: no kill switch {feature!r}",
            known=sorted(FEATURES),
        )
    event = KillSwitchToggled(
        envelope=ids.envelope(
            KillSwitchToggled,
            run_id=f"killswitch-{feature}",
            tenant_id=p.tenant_id,
            actor=p.actor,
            correlation_id=str(uuid.uuid4()),
            discriminator=(str(uuid.uuid4()),),
        ),
        feature=feature,
        enabled=body.enabled,
        reason=body.reason,
    )
    await state.appender.append(event)  # LogUnavailable: 503, api.problems
    applied = await _applied(state, feature, body.enabled)
    return SwitchOut(feature=feature, enabled=body.enabled, reason=body.reason, applied=applied)


@router.get("/admin/kill-switches", response_model=list[SwitchOut])
async def list_switches(p: KillSwitchAdmin, state: StateDep) -> Any:
    """Every kill switch ever toggled, with its current state."""
    async with owner_connection(
        await state.postgres.get(), state.settings.projections_schema
    ) as conn:
        rows = await killswitch.list_switches(conn)
    # The reason is sealed with the key of the tenant whose principal toggled it.
    return [
        SwitchOut(feature=r.feature, enabled=r.enabled, reason=r.reason, applied=True)
        for r in await open_fields(state.privacy, rows, "reason")
    ]
