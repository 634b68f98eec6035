"""Audit chain verification and operations (dead letters, projection lag) for the
dashboard: reads of the read models and of the log, never writes."""

from __future__ import annotations

from typing import Annotated, Any

from aiokafka.errors import KafkaError
from fastapi import APIRouter

from api.deps import StateDep
from api.problems import Problem
from api.routes.audit import Chain
from api.routes.runs import FreshnessDep, Positions
from api.security.deps import require
from api.security.principal import Principal
from domain.audit_retention import PLATFORM
from streams.audit_verify import verify_topic
from streams.deadletter_reader import recent_dead_letters
from streams.topics import Topic, topic_name

router = APIRouter(tags=["operations"])
AuditReader = Annotated[Principal, require("audit:read")]


@router.get("/audit/verify")
async def verify_audit(state: StateDep, p: AuditReader, chain: Chain = "tenant") -> dict[str, Any]:
    """The caller's audit chain (or the platform's) recomputed from the log: ok, or where
    it breaks."""
    s = state.settings
    owner = PLATFORM if chain == "platform" else p.tenant_id
    try:
        result = await verify_topic(
            s.kafka_bootstrap, state.codec, [topic_name(s, Topic.AUDIT)], tenant=owner
        )
    except (KafkaError, OSError) as exc:
        raise Problem(503, "log-unavailable", f"cannot read the audit log: {exc}") from exc
    report = result.tenants.get(owner)
    if report is None:
        return {"ok": True, "records": 0, "head": None, "broken": None}
    return {
        "ok": report.broken is None,
        "records": report.records,
        "head": report.head.hash,
        "broken": None if report.broken is None else str(report.broken),
    }


@router.get("/operations")
async def operations(state: StateDep, probe: FreshnessDep, p: AuditReader) -> dict[str, Any]:
    """The tenant's newest dead letters with their reasons, and the projections' lag."""
    s = state.settings
    positions = await Positions.now(state)
    try:
        letters = await recent_dead_letters(
            s.kafka_bootstrap, topic_name(s, Topic.DEADLETTER), p.tenant_id
        )
    except (KafkaError, OSError) as exc:
        raise Problem(503, "log-unavailable", f"cannot read the dead letters: {exc}") from exc
    return {"dead_letters": letters, "freshness": await positions.freshness(probe)}
