"""The live dashboard view, served from the Redis projection: counters and newest runs."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from redis.exceptions import RedisError

from api.deps import StateDep
from api.problems import Problem
from api.routes.runs import FreshnessDep, RunReader
from domain.run_view import RunView
from projections.redis_store import RedisProjection

router = APIRouter(tags=["runs"])


@router.get("/live")
async def live(
    state: StateDep,
    probe: FreshnessDep,
    p: RunReader,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    """The caller's live counters (active runs, pending approvals, totals) and newest runs.

    Read from Redis, so it is cheap to poll. A finished run leaves this view
    ``OMNIHUB_LIVE_RETENTION_S`` after it ended; ``/runs`` keeps every run.
    """
    projection = RedisProjection.of(state.redis, state.settings)
    asked_at = time.monotonic()
    try:  # the positions first: the view then holds at least what they say
        positions = await projection.positions()
        view = await projection.live(p.tenant_id, limit)
    except (RedisError, OSError) as exc:
        raise Problem(
            503,
            "projections-unavailable",
            f"live view unavailable: {exc}",
            headers={"Retry-After": "5"},
        ) from exc
    rows = [
        {
            "topic": t,
            "partition": n,
            "next_offset": offset,
            "applied_at": None,
            "event_time": datetime.fromisoformat(when) if when else None,
        }
        for (t, n), (offset, when) in sorted(positions.items())
    ]
    return {
        "counters": view["counters"],
        "recent": [_run(r) for r in view["recent"]],
        "freshness": await probe.describe(rows, since=asked_at),
    }


def _run(view: RunView) -> dict[str, Any]:
    return {
        "run_id": view.run_id,
        "status": view.status,
        "goal": view.goal,
        "created_at": view.created_at,
        "updated_at": view.updated_at,
        "ended_at": view.ended_at,
        "steps_planned": view.steps_planned,
        "steps_completed": view.steps_completed,
        "steps_failed": view.steps_failed,
        "pending_approvals": view.pending_approvals,
        "cache_hit": view.cache_hit,
    }
