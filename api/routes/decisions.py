"""Human decisions on runs: grant or deny an approval, cancel a run.

Both append an event and return; the saga bridge turns the event into a signal to the
run's workflow. The API never talks to Temporal. The approval and the run are looked
up in their projections (tenant-scoped by row-level security), so an unknown id, another
tenant's id or an approval that is no longer pending is refused with problem details.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, Path, status
from pydantic import BaseModel, ConfigDict, Field
from redis.exceptions import RedisError

from api.deps import AppState, StateDep
from api.problems import Problem
from api.security.deps import require
from api.security.principal import Principal
from api.security.tenancy import tenant_connection
from api.text import Text
from domain import ids
from domain.decisions import approval_refusal, cancel_refusal
from domain.events import ApprovalDenied, ApprovalGranted, Event, RunCancelRequested
from streams.producer import LogUnavailable

router = APIRouter(tags=["decisions"])

Decider = Annotated[Principal, require("approvals:decide")]
Canceller = Annotated[Principal, require("runs:cancel")]
ApprovalId = Annotated[Text, Path(min_length=1, max_length=100)]
RunId = Annotated[Text, Path(min_length=1, max_length=100)]
# One decision per approval: the first claim wins, a concurrent second gets 409.
CLAIM_KEY = "omnihub:approval-decision:{}"
CLAIM_TTL_S = 7 * 24 * 3600


class DecisionRequest(BaseModel):
    """A human's answer to an approval request."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["grant", "deny"]
    approver: Text = Field(min_length=1, max_length=200, description="Who decided.")
    reason: Text | None = Field(default=None, max_length=2000)


class CancelRequest(BaseModel):
    """Stop a run and roll back its completed steps."""

    model_config = ConfigDict(extra="forbid")

    reason: Text = Field(
        min_length=1, max_length=500, description="Required: why the run is stopped."
    )
    requested_by: Text | None = Field(
        default=None, max_length=200, description="Who asked; the key's actor if absent."
    )


class Appended(BaseModel):
    """The event that carries the decision, and the run it is for."""

    run_id: str
    event_id: str
    event_type: str
    status_url: str


@router.post(
    "/approvals/{approval_id}", status_code=status.HTTP_202_ACCEPTED, response_model=Appended
)
async def decide_approval(
    approval_id: ApprovalId, body: DecisionRequest, state: StateDep, p: Decider
) -> dict[str, Any]:
    """Grant or deny a pending approval: appends ``approval_granted`` or ``approval_denied``."""
    row = await _fetch(
        state,
        p,
        "SELECT run_id, tenant_id, step_id, status, decided_by FROM approvals"
        " WHERE approval_id = $1",
        approval_id,
    )
    if row is None:
        raise Problem(404, "approval-not-found", f"no approval {approval_id!r} for this tenant")
    refused = approval_refusal(approval_id, row["status"], row["decided_by"])
    if refused is not None:
        raise Problem.conflict(refused)
    await _claim(state, approval_id)
    cls = ApprovalGranted if body.decision == "grant" else ApprovalDenied
    env = ids.envelope(
        cls,
        run_id=row["run_id"],
        tenant_id=row["tenant_id"],
        actor=p.actor,
        correlation_id=row["run_id"],
        discriminator=(approval_id, "human"),
    )
    event = cls(env, approval_id, row["step_id"], body.approver, body.reason)
    try:
        return await _append(state, event)
    except LogUnavailable:
        await state.redis.delete(CLAIM_KEY.format(approval_id))  # nothing recorded
        raise


@router.post("/runs/{run_id}/cancel", status_code=status.HTTP_202_ACCEPTED, response_model=Appended)
async def cancel_run(
    run_id: RunId, body: CancelRequest, state: StateDep, p: Canceller
) -> dict[str, Any]:
    """Ask a run to stop and compensate, saying why (``reason`` is required): appends
    ``run_cancel_requested``."""
    row = await _fetch(state, p, "SELECT tenant_id, status FROM runs WHERE run_id = $1", run_id)
    if row is None:
        raise Problem(404, "run-not-found", f"no run {run_id!r} for this tenant")
    refused = cancel_refusal(run_id, row["status"])
    if refused is not None:
        raise Problem.conflict(refused)
    requested_by = body.requested_by or p.actor
    env = ids.envelope(
        RunCancelRequested,
        run_id=run_id,
        tenant_id=row["tenant_id"],
        actor=p.actor,
        correlation_id=run_id,
        # The same request retried is the same fact.
        discriminator=(requested_by, body.reason),
    )
    return await _append(state, RunCancelRequested(env, body.reason, requested_by))


async def _fetch(state: AppState, p: Principal, query: str, key: str) -> asyncpg.Record | None:
    try:
        pool = await state.postgres.get()
        async with tenant_connection(pool, p.tenant_id, state.settings.projections_schema) as conn:
            row: asyncpg.Record | None = await conn.fetchrow(query, key)
            return row
    except (OSError, asyncpg.PostgresError) as exc:
        raise Problem(
            503, "projections-unavailable", f"cannot read the projections: {exc}"
        ) from exc


async def _claim(state: AppState, approval_id: str) -> None:
    try:
        claimed = await state.redis.set(CLAIM_KEY.format(approval_id), "1", nx=True, ex=CLAIM_TTL_S)
    except RedisError as exc:
        raise Problem(503, "decisions-unavailable", "cannot record the decision now") from exc
    if not claimed:
        raise Problem(409, "approval-already-decided", f"approval {approval_id!r} was just decided")


async def _append(state: AppState, event: Event) -> dict[str, Any]:
    await state.appender.append(event)  # LogUnavailable: 503, api.problems
    run_id = event.envelope.run_id
    return {
        "run_id": run_id,
        "event_id": event.envelope.event_id,
        "event_type": event.envelope.event_type,
        "status_url": f"/api/v1/runs/{run_id}",
    }
