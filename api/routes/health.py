"""Liveness of OmniHub's dependencies."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import StateDep
from api.health import Probe, check_all

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    responses={
        503: {
            "description": "Some dependency is down (same report).",
            "content": {"application/json": {}},
        }
    },
)
async def get_health(state: StateDep) -> JSONResponse:
    """Report Kafka, Postgres, Redis and Temporal separately; 503 if any is down."""

    async def postgres() -> Any:
        return await (await state.postgres.get()).fetchval("SELECT 1")

    async def temporal() -> Any:
        return await (await state.temporal.get()).service_client.check_health()

    probes: dict[str, Probe] = {
        "kafka": state.appender.ping,
        "postgres": postgres,
        "redis": state.redis.ping,
        "temporal": temporal,
    }
    report = await check_all(probes)
    return JSONResponse(report, status_code=200 if report["status"] == "ok" else 503)
