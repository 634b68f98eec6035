"""Human decisions on runs: grant or deny an approval, cancel a run.

Both append an event and return; the saga bridge turns the event into a signal to the
run's workflow. The API never talks to Temporal. The approval and the run are looked
up in their projections (tenant-scoped by row-level security), so an unknown id, another
tenant's id or an approval that is no longer pending is refused with problem details.

The decider is the authenticated principal, never text in the body (``note`` may say
why). The rules of :mod:`domain.decisions` refuse the run's own requester, a second
grant by the same principal, and an approval whose requester is unknown; every refusal
is problem details and an ``approval`` audit fact.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, Path, status
from pydantic import BaseModel, ConfigDict, Field, model_validator
from redis.exceptions import RedisError

from api.deps import AppState, StateDep
from api.problems import Problem
from api.security.audit import audit_fact
from api.security.deps import require, security_of
from api.security.principal import Principal
from api.security.tenancy import tenant_connection
from api.text import Text
from domain import ids
from domain.decisions import (
    PendingApproval,
    Refused,
    cancel_refusal,
    decider_refusal,
    is_final_grant,
)
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
    """A human's answer to an approval request; the decider is the authenticated key."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["grant", "deny"]
    note: Text | None = Field(
        default=None, max_length=2000, description="Why; recorded beside the decider."
    )
    reason: Text | None = Field(default=None, max_length=2000, description="Alias of note.")

    @model_validator(mode="before")
    @classmethod
    def _no_claimed_identity(cls, data: Any) -> Any:
        if isinstance(data, dict) and "approver" in data:
            raise ValueError(
                "approver: the decider is the authenticated principal, not a body field;"
                " drop 'approver' (say why in 'note')"
            )
        return data


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
    """Grant or deny a pending approval as the calling principal (never the run's
    requester): appends ``approval_granted`` or ``approval_denied``."""
    row = await _fetch(state, p, _APPROVAL_QUERY, approval_id)
    if row is None:
        raise Problem(404, "approval-not-found", f"no approval {approval_id!r} for this tenant")
    pending = PendingApproval(
        approval_id,
        row["status"],
        row["decided_by"],
        row["requested_by"] or row["goal_actor"],
        tuple(json.loads(row["approvers"] or "[]")),
        row["required_approvals"],
    )
    refused = decider_refusal(pending, p.actor)
    if refused is not None:
        await _audit_refusal(state, p, approval_id, body.decision, refused)
        problem = Problem(refused.status, refused.code, refused.detail)
        problem.extensions = dict(refused.facts)
        raise problem
    final = body.decision == "deny" or is_final_grant(pending, p.actor)
    # One final decision per approval; one grant per principal towards a quorum.
    claim = CLAIM_KEY.format(approval_id if final else f"{approval_id}:{p.actor}")
    await _claim(state, claim, approval_id)
    cls = ApprovalGranted if body.decision == "grant" else ApprovalDenied
    env = ids.envelope(
        cls,
        run_id=row["run_id"],
        tenant_id=row["tenant_id"],
        actor=p.actor,
        correlation_id=row["run_id"],
        discriminator=(approval_id, "human", p.actor),
    )
    event = cls(env, approval_id, row["step_id"], p.actor, body.note or body.reason)
    try:
        return await _append(state, event)
    except LogUnavailable:
        await state.redis.delete(claim)  # nothing recorded
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


# The requester: recorded on the approval (v2), else the run's goal_received actor.
_APPROVAL_QUERY = (
    "SELECT a.run_id, a.tenant_id, a.step_id, a.status, a.decided_by, a.requested_by,"
    " a.approvers::text AS approvers, a.required_approvals,"
    " (SELECT e.actor FROM run_events e WHERE e.run_id = a.run_id"
    "  AND e.event_type = 'goal_received' LIMIT 1) AS goal_actor"
    " FROM approvals a WHERE a.approval_id = $1"
)


async def _audit_refusal(
    state: AppState, p: Principal, approval_id: str, decision: str, refused: Refused
) -> None:
    facts = {k: v or "" for k, v in refused.facts.items()}
    await security_of(state).audit.record(
        audit_fact(
            p.tenant_id,
            "approval",
            decision,
            "denied",
            subject=p.actor,
            resource=f"approval:{approval_id}",
            details={"refusal": refused.code, "detail": refused.detail, **facts},
        )
    )


async def _claim(state: AppState, claim: str, approval_id: str) -> None:
    try:
        claimed = await state.redis.set(claim, "1", nx=True, ex=CLAIM_TTL_S)
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
