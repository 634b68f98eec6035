"""``POST /api/v1/goals:batch``: up to ``batch_max_goals`` goals in one request.

Each item is validated, claimed (when it has an ``idempotency_key``) and answered on
its own: one bad item does not sink the others. Valid new items are appended together,
pipelined; the answer lists, in request order, a status per item with either where the
goal landed or a problem. Items the tenant's tier refuses (approval timeout out of
range; past the month's goals: the later items of the batch) get 402 naming the
entitlement.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, status
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from api.deps import AppState, StateDep
from api.idempotency import IdempotencyUnavailable, request_fingerprint
from api.problems import Problem
from api.routes.goals import (
    Context,
    GoalWriter,
    accepted_body,
    goal_event,
    refuse_if_disabled,
    tenant_of,
)
from api.security.deps import tier_of
from api.security.goal_checks import check_approval_timeout, take_goals
from api.security.principal import Principal
from api.text import Text
from domain import ids
from domain.entitlements import Effective
from domain.events import GoalReceived
from domain.goal_text import require_words
from streams.producer import LogUnavailable

router = APIRouter(tags=["goals"])
RESOURCE = "POST /api/v1/goals:batch"


class BatchItem(BaseModel):
    """One goal of a batch."""

    model_config = ConfigDict(extra="forbid")

    goal: Annotated[Text, AfterValidator(require_words)] = Field(min_length=1, max_length=2000)
    context: Context = Field(default_factory=dict, max_length=64)
    idempotency_key: Text | None = Field(default=None, min_length=1, max_length=255)


class GoalBatch(BaseModel):
    """Goals to accept; items are validated one by one."""

    model_config = ConfigDict(extra="forbid")

    tenant_id: Text | None = None
    goals: list[dict[str, Any]] = Field(min_length=1)


def _problem(index: int, status_code: int, slug: str, detail: str) -> dict[str, Any]:
    return {"index": index, "status": status_code, "problem": {"type": slug, "detail": detail}}


def _refused(index: int, problem: Problem) -> dict[str, Any]:
    answer = _problem(index, problem.status, problem.type, problem.detail)
    answer["problem"].update(problem.extensions)
    return answer


async def _prepare(
    state: AppState, tenant: str, p: Principal, tier: Effective, index: int, raw: dict[str, Any]
) -> GoalReceived | dict[str, Any]:
    """The event to append for item ``index``, or its final answer."""
    try:
        item = BatchItem.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        return _problem(index, 422, "validation-error", f"{where}: {first['msg']}")
    try:
        await check_approval_timeout(state, p, tier, item.context, RESOURCE)
    except Problem as problem:
        return _refused(index, problem)
    if item.idempotency_key is None:
        return goal_event(tenant, item.goal, item.context, str(uuid.uuid4()), None, p.actor)
    fingerprint = request_fingerprint(
        {"tenant_id": tenant, "goal": item.goal, "context": item.context}
    )
    try:
        claim = await state.idempotency.claim(tenant, item.idempotency_key, fingerprint)
    except IdempotencyUnavailable as exc:
        return _problem(index, 503, "idempotency-unavailable", str(exc))
    if claim.fingerprint != fingerprint:
        return _problem(index, 422, "idempotency-key-reused", "key used for another goal")
    if claim.state == "pending":
        return _problem(index, 409, "request-in-progress", "this key is still being processed")
    if claim.state == "done" and claim.response is not None:
        return {"index": index, "status": 202, "replayed": True, **claim.response}
    run_id = ids.run_id_for_request(tenant, item.idempotency_key)
    return goal_event(tenant, item.goal, item.context, run_id, item.idempotency_key, p.actor)


async def _append(
    state: AppState, tenant: str, todo: list[tuple[int, GoalReceived]]
) -> list[dict[str, Any]]:
    events = [e for _, e in todo]
    try:
        results = await state.appender.append_many(events)
    except LogUnavailable as exc:
        for _, e in todo:
            if e.idempotency_key:
                await state.idempotency.release(tenant, e.idempotency_key)
        return [_problem(i, 503, "log-unavailable", str(exc)) for i, _ in todo]
    out = []
    for (i, e), r in zip(todo, results, strict=True):
        body = accepted_body(e, r.topic, r.partition, r.offset)
        if e.idempotency_key:
            fp = request_fingerprint(
                {"tenant_id": tenant, "goal": e.goal, "context": dict(e.context)}
            )
            try:
                await state.idempotency.complete(tenant, e.idempotency_key, fp, body)
            except IdempotencyUnavailable:
                pass  # appended already; a retry derives the same run and event id
        out.append({"index": i, "status": 202, **body})
    return out


async def _over_quota(
    state: AppState, tenant: str, over: list[tuple[int, GoalReceived]], refused: Problem
) -> list[dict[str, Any]]:
    for _, e in over:
        if e.idempotency_key:
            await state.idempotency.release(tenant, e.idempotency_key)
    return [_refused(i, refused) for i, _ in over]


@router.post("/goals:batch", status_code=status.HTTP_207_MULTI_STATUS)
async def post_goals(body: GoalBatch, p: GoalWriter, state: StateDep) -> dict[str, Any]:
    """Accept up to ``batch_max_goals`` goals; answers a status per item."""
    limit = state.settings.batch_max_goals
    if len(body.goals) > limit:
        raise Problem(413, "batch-too-large", f"at most {limit} goals per batch", limit=limit)
    tenant = await tenant_of(state, p, body.tenant_id, RESOURCE)
    await refuse_if_disabled(state)
    tier = await tier_of(state, p)
    answers: list[dict[str, Any]] = []
    todo: list[tuple[int, GoalReceived]] = []
    for index, raw in enumerate(body.goals):
        prepared = await _prepare(state, tenant, p, tier, index, raw)
        if isinstance(prepared, GoalReceived):
            todo.append((index, prepared))
        else:
            answers.append(prepared)
    if todo:
        charge, refused = await take_goals(state, p, tier, len(todo), RESOURCE)
        todo, over = todo[: charge.granted], todo[charge.granted :]
        if refused is not None:
            answers.extend(await _over_quota(state, tenant, over, refused))
        appended = await _append(state, tenant, todo) if todo else []
        failed = sum(1 for a in appended if a["status"] != 202)
        if failed:
            await charge.give_back(failed)
        answers.extend(appended)
    answers.sort(key=lambda a: a["index"])
    accepted = sum(1 for a in answers if a["status"] == 202)
    return {"accepted": accepted, "rejected": len(answers) - accepted, "items": answers}
