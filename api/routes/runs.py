"""Dashboard reads of runs: a filtered, cursor-paginated list and one run's timeline."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, Depends, Query, Request

from api.deps import AppState, StateDep
from api.problems import Problem
from api.security.deps import require
from api.security.principal import Principal
from api.security.tenancy import owner_connection, tenant_connection
from api.text import Text
from domain.storable import unstorable
from projections import queries
from projections.freshness import FreshnessProbe
from streams.topics import Topic, topic_name

router = APIRouter(tags=["runs"])

RunStatus = Literal["received", "assessed", "rejected", "planned", "running",
                    "awaiting_approval", "compensating", "cancelling", "completed",
                    "failed", "cancelled"]


async def get_freshness(request: Request) -> FreshnessProbe:
    """The app's freshness probe, built on first use (async: no thread pool hop)."""
    probe: FreshnessProbe | None = getattr(request.app.state, "projection_freshness", None)
    if probe is None:
        settings = request.app.state.omnihub.settings
        topics = [topic_name(settings, t) for t in (Topic.RUNS, Topic.AUDIT)]
        probe = FreshnessProbe(settings.kafka_bootstrap, topics)
        request.app.state.projection_freshness = probe
    return probe


FreshnessDep = Annotated[FreshnessProbe, Depends(get_freshness)]
RunReader = Annotated[Principal, require("runs:read")]


_UNAVAILABLE = (OSError, asyncpg.PostgresConnectionError, asyncpg.UndefinedTableError)


@asynccontextmanager
async def read_models(state: AppState, p: Principal) -> AsyncIterator[asyncpg.Connection]:
    """A read-only connection seeing only the caller's tenant, or a 503 problem."""
    try:
        pool = await state.postgres.get()
        async with tenant_connection(pool, p.tenant_id, state.settings.projections_schema) as c:
            yield c
    except _UNAVAILABLE as exc:
        raise _unavailable(exc) from exc


def _unavailable(exc: Exception) -> Problem:
    return Problem(503, "projections-unavailable", f"read models unavailable: {exc}",
                   headers={"Retry-After": "5"})


async def fresh(state: AppState, probe: FreshnessProbe) -> dict[str, Any]:
    """Positions and lag of the Postgres projector (not tenant data: read as owner)."""
    try:
        pool = await state.postgres.get()
        async with owner_connection(pool, state.settings.projections_schema) as conn:
            rows = await queries.freshness(conn)
    except _UNAVAILABLE as exc:
        raise _unavailable(exc) from exc
    return await probe.describe(rows)


def parse_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    """The position a ``cursor`` points after; an empty cursor is no cursor."""
    if not cursor:
        return None
    try:
        after = queries.decode_cursor(cursor)
    except ValueError as exc:
        raise Problem(400, "bad-cursor", "the cursor is not one this API returned") from exc
    if unstorable(after[1]) is not None:  # not one of ours, and Postgres cannot compare it
        raise Problem(400, "bad-cursor", "the cursor is not one this API returned")
    return after


@router.get("/runs")
async def list_runs(
    state: StateDep,
    probe: FreshnessDep,
    p: RunReader,
    status: RunStatus | None = None,
    since: Annotated[datetime | None, Query(description="created at or after")] = None,
    until: Annotated[datetime | None, Query(description="created before")] = None,
    cursor: Text | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """The caller's runs newest first, filtered by status and creation time."""
    after = parse_cursor(cursor)
    async with read_models(state, p) as conn:
        page, next_cursor = await queries.list_runs(
            conn, tenant_id=p.tenant_id, status=status, since=since, until=until,
            after=after, limit=limit)
    return {"items": page, "next_cursor": next_cursor, "freshness": await fresh(state, probe)}


@router.get("/runs/{run_id}")
async def get_run(run_id: Text, state: StateDep, probe: FreshnessDep, p: RunReader
                  ) -> dict[str, Any]:
    """One run with its ordered event timeline."""
    async with read_models(state, p) as conn:
        run = await queries.get_run(conn, run_id)
        if run is not None:
            run["timeline"] = await queries.run_timeline(conn, run_id)
    freshness = await fresh(state, probe)
    if run is None:
        raise Problem(404, "run-not-found", f"no run {run_id} for this tenant (yet)",
                      freshness=_jsonable(freshness))
    return {**run, "freshness": freshness}


def _jsonable(value: Any) -> Any:
    from fastapi.encoders import jsonable_encoder

    return jsonable_encoder(value)
