"""KPI roll-ups per tenant per minute, for dashboards."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.deps import StateDep
from api.routes.runs import FreshnessDep, Positions, read_models
from api.security.deps import require
from api.security.principal import Principal
from projections import queries

router = APIRouter(tags=["kpis"])
KpiReader = Annotated[Principal, require("kpis:read")]


@router.get("/kpis")
async def get_kpis(
    state: StateDep,
    probe: FreshnessDep,
    p: KpiReader,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1440,
) -> dict[str, Any]:
    """Per minute: goals, outcomes, compensations, run p50/p95, plan cache hit rate and
    the model calls it saved."""
    positions = await Positions.now(state)
    async with read_models(state, p) as conn:
        rows = await queries.kpis(
            conn, tenant_id=p.tenant_id, since=since, until=until, limit=limit
        )
    return {"items": rows, "freshness": await positions.freshness(probe)}
