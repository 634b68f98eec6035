"""Dashboard reads of runs: a filtered, cursor-paginated list and one run's timeline."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
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

RunStatus = Literal[
    "received",
    "assessed",
    "rejected",
    "planned",
    "running",
    "awaiting_approval",
    "compensating",
    "cancelling",
    "completed",
    "failed",
    "cancelled",
]


async def get_freshness(request: Request) -> FreshnessProbe:
    """The app's freshness probe, built on first use (async: no thread pool hop)."""
    probe: FreshnessProbe | None = getattr(request.app.state, "projection_freshness", None)
    if probe is None:
        settings = request.app.state.omnihub.settings
        # The runs topic only: these read models fold it. The audit topic grows with
        # every request (each one's facts are chained), so no read would ever be
        # "caught up" with it.
        probe = FreshnessProbe(settings.kafka_bootstrap, [topic_name(settings, Topic.RUNS)])
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
    return Problem(
        503,
        "projections-unavailable",
        f"read models unavailable: {exc}",
        headers={"Retry-After": "5"},
    )


@dataclass(frozen=True)
class Positions:
    """The Postgres projector's positions (not tenant data: read as owner), and when."""

    rows: list[dict[str, Any]]
    asked_at: float  # time.monotonic() before they were read

    @classmethod
    async def now(cls, state: AppState) -> Positions:
        """Read them: before the data a read serves, so the data holds at least them."""
        asked_at = time.monotonic()
        try:
            pool = await state.postgres.get()
            async with owner_connection(pool, state.settings.projections_schema) as conn:
                rows = await queries.freshness(conn)
        except _UNAVAILABLE as exc:
            raise _unavailable(exc) from exc
        return cls(rows, asked_at)

    async def freshness(self, probe: FreshnessProbe) -> dict[str, Any]:
        """The freshness block: caught up only against the log's end as of after them."""
        return await probe.describe(self.rows, since=self.asked_at)


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
    positions = await Positions.now(state)
    async with read_models(state, p) as conn:
        page, next_cursor = await queries.list_runs(
            conn,
            tenant_id=p.tenant_id,
            status=status,
            since=since,
            until=until,
            after=after,
            limit=limit,
        )
    freshness = await positions.freshness(probe)
    return {"items": page, "next_cursor": next_cursor, "freshness": freshness}


@router.get("/runs/{run_id}")
async def get_run(
    run_id: Text, state: StateDep, probe: FreshnessDep, p: RunReader
) -> dict[str, Any]:
    """One run with its ordered event timeline."""
    positions = await Positions.now(state)
    async with read_models(state, p) as conn:
        run = await queries.get_run(conn, run_id)
        if run is not None:
            run["timeline"] = await queries.run_timeline(conn, run_id)
    freshness = await positions.freshness(probe)
    if run is None:
        raise Problem(
            404,
            "run-not-found",
            f"no run {run_id} for this tenant (yet)",
            freshness=_jsonable(freshness),
        )
    return {**run, "freshness": freshness}


def _jsonable(value: Any) -> Any:
    from fastapi.encoders import jsonable_encoder

    return jsonable_encoder(value)
