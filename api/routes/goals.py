"""Goal ingestion: a goal becomes a ``goal_received`` event in the log.

The tenant comes from the caller's API key; a body ``tenant_id`` may be given only if it
is the key's own (anything else is a 403, audited). New goals are refused with 503
``feature-disabled`` while the ``goals.create`` kill switch is engaged, and with 402
naming the entitlement when the tenant's tier has no goals left this month or does not
allow the approval timeout the context asks for (``api.security.goal_checks``).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Response, status
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from redis.exceptions import RedisError

from api.deps import AppState, StateDep
from api.idempotency import IdempotencyUnavailable, request_fingerprint
from api.problems import Problem
from api.security.audit import audit_fact
from api.security.deps import require, security_of, tier_of
from api.security.goal_checks import check_approval_timeout, take_goals
from api.security.principal import Principal
from api.text import Text
from domain import ids
from domain.entitlements import Effective
from domain.events import GoalReceived
from domain.goal_text import require_words
from domain.killswitch import GOALS_CREATE
from domain.scopes import TENANT_PATTERN
from streams.producer import LogUnavailable

router = APIRouter(tags=["goals"])
RESOURCE = "POST /api/v1/goals"

GoalWriter = Annotated[Principal, require("goals:write")]
Context = dict[Text, Annotated[Text, Field(max_length=8192)]]


class GoalRequest(BaseModel):
    """A goal for OmniHub to achieve."""

    model_config = ConfigDict(extra="forbid")

    tenant_id: str | None = Field(
        default=None, pattern=TENANT_PATTERN, description="Optional; must be the key's tenant."
    )
    goal: Annotated[Text, AfterValidator(require_words)] = Field(
        min_length=1, max_length=2000, description="What to achieve (not blank)."
    )
    context: Context = Field(
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
    Text | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Retries with the same key return the first answer and append nothing.",
    ),
]


async def tenant_of(state: AppState, p: Principal, claimed: str | None, resource: str) -> str:
    """The caller's tenant; a different ``claimed`` tenant is refused (and audited)."""
    if claimed is None or claimed == p.tenant_id:
        return p.tenant_id
    await security_of(state).audit.record(
        audit_fact(
            p.tenant_id,
            "authz",
            "tenant",
            "denied",
            subject=p.actor,
            resource=resource,
            details={"claimed_tenant": claimed},
        )
    )
    raise Problem(403, "tenant-mismatch", "the body names a tenant other than the key's")


async def refuse_if_disabled(state: AppState) -> None:
    """503 ``feature-disabled`` while the ``goals.create`` kill switch is engaged (seen
    within ``killswitch_cache_ttl_s``)."""
    try:
        engaged = await state.switches.is_engaged(GOALS_CREATE)
    except RedisError as exc:
        raise Problem(503, "killswitch-unavailable", "cannot read the kill switches") from exc
    if engaged:
        raise Problem(
            503,
            "feature-disabled",
            "new goals are switched off by an operator",
            headers={"Retry-After": "60"},
            feature=GOALS_CREATE,
        )


def goal_event(
    tenant: str, goal: str, context: dict[str, str], run_id: str, key: str | None, actor: str
) -> GoalReceived:
    """The ``goal_received`` event of a new run."""
    return GoalReceived(
        envelope=ids.envelope(
            GoalReceived, run_id=run_id, tenant_id=tenant, actor=actor, correlation_id=run_id
        ),
        goal=goal,
        context=context,
        idempotency_key=key,
    )


@router.post("/goals", status_code=status.HTTP_202_ACCEPTED, response_model=GoalAccepted)
async def post_goal(
    body: GoalRequest,
    p: GoalWriter,
    state: StateDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    """Accept a goal: append ``goal_received`` durably and return the new run."""
    tenant = await tenant_of(state, p, body.tenant_id, RESOURCE)
    await refuse_if_disabled(state)
    tier = await tier_of(state, p)
    await check_approval_timeout(state, p, tier, body.context, RESOURCE)
    if idempotency_key is None:
        event = goal_event(tenant, body.goal, body.context, str(uuid.uuid4()), None, p.actor)
        accepted = await _charged_append(state, p, tier, event)
    else:
        accepted = await _append_once(state, tenant, body, idempotency_key, response, p, tier)
    response.headers["Location"] = accepted["status_url"]
    return accepted


async def _charged_append(
    state: AppState, p: Principal, tier: Effective, event: GoalReceived
) -> dict[str, Any]:
    """Count the goal against the month (402 when none is left), then append it."""
    charge, refused = await take_goals(state, p, tier, 1, RESOURCE)
    if refused is not None:
        raise refused
    try:
        return await _append_goal(state, event)
    except LogUnavailable:
        await charge.give_back()
        raise


async def _append_once(
    state: AppState,
    tenant: str,
    body: GoalRequest,
    key: str,
    response: Response,
    p: Principal,
    tier: Effective,
) -> dict[str, Any]:
    fingerprint = request_fingerprint(
        {"tenant_id": tenant, "goal": body.goal, "context": body.context}
    )
    try:
        claim = await state.idempotency.claim(tenant, key, fingerprint)
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
    run_id = ids.run_id_for_request(tenant, key)
    try:
        accepted = await _charged_append(
            state, p, tier, goal_event(tenant, body.goal, body.context, run_id, key, p.actor)
        )
    except (LogUnavailable, Problem):
        await state.idempotency.release(tenant, key)  # nothing recorded: free the retry
        raise
    try:
        await state.idempotency.complete(tenant, key, fingerprint, accepted)
    except IdempotencyUnavailable:
        pass  # appended already; a retry derives the same run and event id
    return accepted


def accepted_body(event: GoalReceived, topic: str, partition: int, offset: int) -> dict[str, Any]:
    """The 202 answer for an appended goal."""
    run_id = event.envelope.run_id
    return {
        "run_id": run_id,
        "event_id": event.envelope.event_id,
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "status_url": f"/api/v1/runs/{run_id}",
    }


async def _append_goal(state: AppState, event: GoalReceived) -> dict[str, Any]:
    result = await state.appender.append(event)  # LogUnavailable: 503, api.problems
    return accepted_body(event, result.topic, result.partition, result.offset)
