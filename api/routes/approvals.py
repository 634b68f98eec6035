"""The approvals queue for dashboards (reads only; decisions are posted elsewhere)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from api.deps import StateDep
from api.problems import Problem
from api.routes.runs import FreshnessDep, Positions, parse_cursor, read_models
from api.security.deps import require
from api.security.principal import Principal
from api.text import Text
from projections import queries

router = APIRouter(tags=["approvals"])
ApprovalReader = Annotated[Principal, require("approvals:read")]


@router.get("/approvals")
async def list_approvals(
    state: StateDep,
    probe: FreshnessDep,
    p: ApprovalReader,
    status: Literal["pending", "granted", "denied", "expired", "withdrawn", "any"] = "pending",
    cursor: Text | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """The caller's approvals oldest request first; by default the pending queue."""
    positions = await Positions.now(state)
    async with read_models(state, p) as conn:
        page, next_cursor = await queries.list_approvals(
            conn,
            tenant_id=p.tenant_id,
            status=None if status == "any" else status,
            after=parse_cursor(cursor),
            limit=limit,
        )
    freshness = await positions.freshness(probe)
    return {"items": page, "next_cursor": next_cursor, "freshness": freshness}


@router.get("/approvals/{approval_id}")
async def get_approval(
    approval_id: Text, state: StateDep, probe: FreshnessDep, p: ApprovalReader
) -> dict[str, Any]:
    """One approval request and its decision, if any."""
    positions = await Positions.now(state)
    async with read_models(state, p) as conn:
        approval = await queries.get_approval(conn, approval_id)
    if approval is None:
        raise Problem(404, "approval-not-found", f"no approval {approval_id} for this tenant")
    return {**approval, "freshness": await positions.freshness(probe)}
