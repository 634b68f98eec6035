"""Tenant isolation through the API: tenant B can neither see nor affect tenant A's runs
and approvals by any route, while A can; A's approval decision lands in A's audit chain."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest

from domain.events import AuditRecorded
from infra.launch import running_api
from infra.stack import StackConfig
from omnihub import REPO_ROOT
from projections.migrate import quote_ident
from streams.codec import EventCodec
from streams.log_reader import read_log
from streams.schema_registry import SchemaRegistry
from tests.e2e.gateway_stack import CliKey, cli_key, gateway_env, running_processor

NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def env(stack: StackConfig) -> dict[str, str]:
    return gateway_env(stack, OMNIHUB_RATE_LIMIT_PER_MINUTE="100000")


@pytest.fixture(scope="module")
def api(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    logs = tmp_path_factory.mktemp("tenancy")
    with running_processor(env, logs), running_api(env, logs) as url:
        yield url


@pytest.fixture(scope="module")
def keys(api: str, env: dict[str, str]) -> dict[str, CliKey]:
    # approvals:decide is never implied (four eyes): granted explicitly beside admin.
    return {t: cli_key(env, t, "admin,approvals:decide") for t in ("tenant-a", "tenant-b")}


def actor_of(key: CliKey) -> str:
    return f"api-key:{key.key.split('_')[1]}"


@pytest.fixture(scope="module")
async def a_run(keys: dict[str, CliKey], env: dict[str, str]) -> tuple[str, str]:
    """A run of tenant A awaiting an approval, as the projector would have folded it."""
    return await pending_approval(env, "api-key:someone-else")


async def pending_approval(env: dict[str, str], requested_by: str) -> tuple[str, str]:
    run_id, approval_id = f"run-{uuid.uuid4()}", f"ap-{uuid.uuid4()}"
    conn = await asyncpg.connect(env["OMNIHUB_POSTGRES_DSN"])
    try:
        await conn.execute(f"SET search_path = {quote_ident(env['OMNIHUB_PROJECTIONS_SCHEMA'])}")
        await conn.execute(
            "INSERT INTO runs (run_id, tenant_id, status, created_at, updated_at,"
            " last_event_type) VALUES ($2, 'tenant-a', 'awaiting_approval', $1, $1,"
            " 'approval_requested')",
            NOW,
            run_id,
        )
        await conn.execute(
            "INSERT INTO approvals (approval_id, run_id, tenant_id, step_id, tool, risk,"
            " reasons, requested_at, expires_at, status, requested_by) VALUES ($2, $3,"
            " 'tenant-a', 's1', 'wire_money', 0.9, '[]', $1, $1, 'pending', $4)",
            NOW,
            approval_id,
            run_id,
            requested_by,
        )
    finally:
        await conn.close()
    return run_id, approval_id


def bearer(key: CliKey) -> dict[str, str]:
    return {"Authorization": f"Bearer {key.key}"}


async def test_tenant_b_cannot_affect_tenant_as_run_by_any_route(api, keys, a_run) -> None:  # type: ignore[no-untyped-def]
    run_id, approval_id = a_run
    b = bearer(keys["tenant-b"])
    async with httpx.AsyncClient(base_url=api, timeout=30) as c:
        r = await c.post(f"/api/v1/runs/{run_id}/cancel", json={"reason": "sabotage"}, headers=b)
        assert r.status_code == 404, r.text
        r = await c.post(
            f"/api/v1/approvals/{approval_id}",
            json={"decision": "grant", "note": "mallory"},
            headers=b,
        )
        assert r.status_code == 404, r.text
        r = await c.post("/api/v1/goals", json={"tenant_id": "tenant-a", "goal": "x"}, headers=b)
        assert r.status_code == 403
        r = await c.post(
            "/api/v1/goals:batch",
            json={"tenant_id": "tenant-a", "goals": [{"goal": "x"}]},
            headers=b,
        )
        assert r.status_code == 403
        listed = await c.get("/api/v1/keys", headers=b)
        assert {k["key_id"] for k in listed.json()} == {keys["tenant-b"].key_id}


async def test_tenant_a_can_decide_and_the_decision_is_in_its_audit_chain(
    api: str, keys: dict[str, CliKey], a_run: tuple[str, str], env: dict[str, str]
) -> None:
    run_id, approval_id = a_run
    a = bearer(keys["tenant-a"])
    async with httpx.AsyncClient(base_url=api, timeout=30) as c:
        r = await c.post(
            f"/api/v1/approvals/{approval_id}",
            json={"decision": "grant", "note": "alice checked it"},
            headers=a,
        )
        assert r.status_code == 202, r.text
        r = await c.post(f"/api/v1/runs/{run_id}/cancel", json={"reason": "done"}, headers=a)
        assert r.status_code == 202, r.text
    codec = EventCodec(SchemaRegistry.from_dir(REPO_ROOT / "schemas"))
    topic = f"{env['OMNIHUB_TOPIC_PREFIX']}.audit.v1"
    for _ in range(60):
        approvals = [
            rec.event
            async for rec in read_log(env["OMNIHUB_KAFKA_BOOTSTRAP"], codec, [topic])
            if isinstance(rec.event, AuditRecorded) and rec.event.category == "approval"
        ]
        if approvals:
            break
        await asyncio.sleep(1)
    # The decider is the authenticated key, whatever the body says.
    assert [(e.envelope.tenant_id, e.action, e.subject) for e in approvals] == [
        ("tenant-a", "grant", actor_of(keys["tenant-a"]))
    ]
    assert approvals[0].resource == f"approval:{approval_id}" and approvals[0].sequence > 0


async def test_the_requester_cannot_decide_and_the_refusal_is_audited(
    api: str, keys: dict[str, CliKey], env: dict[str, str]
) -> None:
    a = keys["tenant-a"]
    _, approval_id = await pending_approval(env, actor_of(a))
    async with httpx.AsyncClient(base_url=api, timeout=30, headers=bearer(a)) as c:
        r = await c.post(f"/api/v1/approvals/{approval_id}", json={"decision": "grant"})
        assert r.status_code == 403, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["type"].endswith("/self-approval")
        claimed = await c.post(
            f"/api/v1/approvals/{approval_id}",
            json={"decision": "grant", "approver": "bob-the-ceo"},
        )
        assert claimed.status_code == 422 and "authenticated principal" in claimed.text
    codec = EventCodec(SchemaRegistry.from_dir(REPO_ROOT / "schemas"))
    topic = f"{env['OMNIHUB_TOPIC_PREFIX']}.audit.v1"
    refusals: list[AuditRecorded] = []
    for _ in range(60):
        refusals = [
            rec.event
            async for rec in read_log(env["OMNIHUB_KAFKA_BOOTSTRAP"], codec, [topic])
            if isinstance(rec.event, AuditRecorded)
            and rec.event.resource == f"approval:{approval_id}"
        ]
        if refusals:
            break
        await asyncio.sleep(1)
    assert [(e.category, e.outcome, e.subject, e.details["refusal"]) for e in refusals] == [
        ("approval", "denied", actor_of(a), "self-approval")
    ]
