"""Goal ingestion: a goal becomes a ``goal_received`` event in the log."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Response, status
from pydantic import BaseModel, ConfigDict, Field

from api.deps import AppState, StateDep
from api.idempotency import IdempotencyUnavailable, request_fingerprint
from api.problems import Problem
from domain import ids
from domain.events import GoalReceived
from streams.producer import LogUnavailable

router = APIRouter(tags=["goals"])

TENANT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class GoalRequest(BaseModel):
    """A goal for OmniHub to achieve."""

    model_config = ConfigDict(extra="forbid")

    tenant_id: str = Field(pattern=TENANT_PATTERN, description="The tenant the run belongs to.")
    goal: str = Field(min_length=1, max_length=2000, description="What to achieve.")
    context: dict[str, Annotated[str, Field(max_length=8192)]] = Field(
        default_factory=dict, max_length=64, description="Free-form string context."
    )


class GoalAccepted(BaseModel):
    """Where the goal's ``goal_received`` event landed."""

    run_id: str
    event_id: str
    topic: str
    partition: int
    offset: int
    status_url: str


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Retries with the same key return the first answer and append nothing.",
    ),
]


@router.post("/goals", status_code=status.HTTP_202_ACCEPTED, response_model=GoalAccepted)
async def post_goal(
    body: GoalRequest,
    state: StateDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    """Accept a goal: append ``goal_received`` durably and return the new run."""
    if idempotency_key is None:
        accepted = await _append_goal(state, body, str(uuid.uuid4()), None)
    else:
        accepted = await _append_once(state, body, idempotency_key, response)
    response.headers["Location"] = accepted["status_url"]
    return accepted


async def _append_once(
    state: AppState, body: GoalRequest, key: str, response: Response
) -> dict[str, Any]:
    fingerprint = request_fingerprint(body.model_dump())
    try:
        claim = await state.idempotency.claim(body.tenant_id, key, fingerprint)
    except IdempotencyUnavailable as exc:
        raise Problem(
            503, "idempotency-unavailable", f"cannot check the Idempotency-Key right now: {exc}"
        ) from exc
    if claim.fingerprint != fingerprint:
        raise Problem(
            422, "idempotency-key-reused", "this Idempotency-Key was used for a different request"
        )
    if claim.state == "pending":
        raise Problem(
            409,
            "request-in-progress",
            "a request with this Idempotency-Key is still being processed",
            headers={"Retry-After": "1"},
        )
    if claim.state == "done" and claim.response is not None:
        response.headers["Idempotent-Replayed"] = "true"
        return claim.response
    run_id = ids.run_id_for_request(body.tenant_id, key)
    try:
        accepted = await _append_goal(state, body, run_id, key)
    except Problem:
        await state.idempotency.release(body.tenant_id, key)
        raise
    try:
        await state.idempotency.complete(body.tenant_id, key, fingerprint, accepted)
    except IdempotencyUnavailable:
        pass  # appended already; a retry derives the same run and event id
    return accepted


async def _append_goal(
    state: AppState, body: GoalRequest, run_id: str, key: str | None
) -> dict[str, Any]:
    event = GoalReceived(
        envelope=ids.envelope(
            GoalReceived,
            run_id=run_id,
            tenant_id=body.tenant_id,
            actor="api",
            correlation_id=run_id,
        ),
        goal=body.goal,
        context=body.context,
        idempotency_key=key,
    )
    try:
        result = await state.appender.append(event)
    except LogUnavailable as exc:
        raise Problem(
            503,
            "log-unavailable",
            f"the goal was not accepted: {exc}",
            headers={"Retry-After": "5"},
        ) from exc
    return {
        "run_id": run_id,
        "event_id": result.event_id,
        "topic": result.topic,
        "partition": result.partition,
        "offset": result.offset,
        "status_url": f"/api/v1/runs/{run_id}",
    }
