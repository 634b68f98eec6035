"""Goals through the whole pipeline: HTTP in, Kafka, the saga, the projections out.

Real processes on the shared test stack, isolated by topic prefix, projections schema,
Redis database and task queue: the API, the gateway processor (keys), the projector
(runs and approvals), the saga bridge and a Temporal worker.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import asyncpg
import httpx
import pytest

from infra.launch import running_api
from infra.stack import StackConfig
from tests.e2e.gateway_stack import CliKey, cli_key, gateway_env, running_processor
from tests.saga_support import omnihub_process, unique


@pytest.fixture(scope="module")
def env(stack: StackConfig) -> dict[str, str]:
    return gateway_env(
        stack,
        OMNIHUB_TEMPORAL_TASK_QUEUE=unique("saga-e2e"),
        OMNIHUB_RATE_LIMIT_PER_MINUTE="100000",
    )


@pytest.fixture(scope="module")
def api(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    logs = tmp_path_factory.mktemp("saga-e2e")
    with ExitStack() as stack:
        stack.enter_context(running_processor(env, logs))
        stack.enter_context(omnihub_process(env, logs / "projector.log", "projector", "run"))
        stack.enter_context(omnihub_process(env, logs / "worker.log", "worker", "run"))
        stack.enter_context(omnihub_process(env, logs / "bridge.log", "saga-bridge", "run"))
        yield stack.enter_context(running_api(env, logs))


@pytest.fixture(scope="module")
def key(api: str, env: dict[str, str]) -> CliKey:
    return cli_key(env, "saga-e2e", "write")


@pytest.fixture(scope="module")
def approver_key(api: str, env: dict[str, str]) -> CliKey:
    # Four eyes: the key that posts goals cannot decide; this one can.
    return cli_key(env, "saga-e2e", "approvals:decide")


def actor_of(key: CliKey) -> str:
    return f"api-key:{key.key.split('_')[1]}"


class Projections:
    def __init__(self, env: dict[str, str]) -> None:
        self.dsn = env["OMNIHUB_POSTGRES_DSN"]
        self.schema = env["OMNIHUB_PROJECTIONS_SCHEMA"]

    async def row(self, query: str, *args: Any) -> asyncpg.Record | None:
        conn = await asyncpg.connect(self.dsn, server_settings={"search_path": self.schema})
        try:
            row: asyncpg.Record | None = await conn.fetchrow(query, *args)
            return row
        finally:
            await conn.close()

    async def until(self, query: str, *args: Any, timeout_s: float = 120.0) -> asyncpg.Record:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                row = await self.row(query, *args)
            except asyncpg.UndefinedTableError:
                row = None  # the projector has not migrated its schema yet
            if row is not None:
                return row
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing for {query} {args} within {timeout_s}s")
            await asyncio.sleep(0.25)


async def post_goal(c: httpx.AsyncClient, goal: str) -> str:
    r = await c.post("/api/v1/goals", json={"goal": goal})
    assert r.status_code == 202, r.text
    return str(r.json()["run_id"])


@pytest.fixture
async def client(api: str, key: CliKey) -> Any:
    async with httpx.AsyncClient(
        base_url=api, timeout=30, headers={"Authorization": f"Bearer {key.key}"}
    ) as c:
        yield c


@pytest.fixture
async def approver(api: str, approver_key: CliKey) -> Any:
    async with httpx.AsyncClient(
        base_url=api, timeout=30, headers={"Authorization": f"Bearer {approver_key.key}"}
    ) as c:
        yield c


async def test_happy_path_run_projection_ends_completed(
    client: httpx.AsyncClient, env: dict[str, str]
) -> None:
    proj = Projections(env)
    run_id = await post_goal(client, "say hello then upper world")
    run = await proj.until("SELECT * FROM runs WHERE run_id = $1 AND status = 'completed'", run_id)
    assert (run["steps_planned"], run["steps_completed"], run["planner"]) == (2, 2, "rules")


async def test_approval_shows_what_is_approved_and_another_key_grants_it(
    client: httpx.AsyncClient,
    approver: httpx.AsyncClient,
    env: dict[str, str],
    key: CliKey,
    approver_key: CliKey,
) -> None:
    proj = Projections(env)
    run_id = await post_goal(client, "say hi then approve the payment")
    approval = await proj.until(
        "SELECT * FROM approvals WHERE run_id = $1 AND status = 'pending'", run_id
    )
    assert (approval["step_id"], approval["tool"], approval["risk"]) == ("s2", "pg_record", 0.9)
    shown = await approver.get(f"/api/v1/approvals/{approval['approval_id']}")
    assert shown.status_code == 200, shown.text
    body = shown.json()
    assert body["goal"] == "say hi then approve the payment"
    assert body["requested_by"] == actor_of(key)
    assert body["arguments"]["record"]["instruction"] == "approve the payment"
    assert set(body["inputs"]) == {"s1"}  # what the step before returned
    assert "payment_instructions" in body["compensation"] and "moves money" in body["reasons"]
    url = f"/api/v1/approvals/{approval['approval_id']}"
    own = await client.post(url, json={"decision": "grant"})
    assert own.status_code == 403  # the requester's key holds no approvals:decide
    r = await approver.post(url, json={"decision": "grant", "note": "ok"})
    assert r.status_code == 202, r.text
    assert r.json()["event_type"] == "approval_granted"
    again = await approver.post(url, json={"decision": "deny"})
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    await proj.until("SELECT 1 FROM runs WHERE run_id = $1 AND status = 'completed'", run_id)
    decided = await proj.row(
        "SELECT status, decided_by, reason FROM approvals WHERE approval_id = $1",
        approval["approval_id"],
    )
    assert decided is not None and tuple(decided) == ("granted", actor_of(approver_key), "ok")


async def test_an_unplannable_goal_fails_with_its_cause(
    client: httpx.AsyncClient, env: dict[str, str]
) -> None:
    proj = Projections(env)
    run_id = await post_goal(client, "Book flight to Paris")
    run = await proj.until("SELECT * FROM runs WHERE run_id = $1 AND status = 'failed'", run_id)
    assert "unplannable" in run["outcome_reason"] and "it understands" in run["outcome_reason"]
    blank = await client.post("/api/v1/goals", json={"goal": "  \t "})
    assert blank.status_code == 422


async def test_denial_compensates_and_the_run_fails(
    client: httpx.AsyncClient,
    approver: httpx.AsyncClient,
    env: dict[str, str],
    approver_key: CliKey,
) -> None:
    proj = Projections(env)
    run_id = await post_goal(client, "save the draft then pay 40 EUR to bob")
    approval = await proj.until(
        "SELECT * FROM approvals WHERE run_id = $1 AND status = 'pending'", run_id
    )
    r = await approver.post(
        f"/api/v1/approvals/{approval['approval_id']}",
        json={"decision": "deny", "reason": "no"},
    )
    assert r.status_code == 202, r.text
    run = await proj.until("SELECT * FROM runs WHERE run_id = $1 AND status = 'failed'", run_id)
    assert run["steps_compensated"] == 1
    assert f"denied by {actor_of(approver_key)}" in run["outcome_reason"]


async def test_cancel_through_the_api_rolls_back(
    client: httpx.AsyncClient, env: dict[str, str]
) -> None:
    proj = Projections(env)
    run_id = await post_goal(client, "save the note then wait 120 s")
    await proj.until("SELECT 1 FROM runs WHERE run_id = $1 AND steps_started = 2", run_id)
    r = await client.post(f"/api/v1/runs/{run_id}/cancel", json={"reason": "not needed"})
    assert r.status_code == 202, r.text
    run = await proj.until("SELECT * FROM runs WHERE run_id = $1 AND status = 'cancelled'", run_id)
    # The saved note, and the wait cancelled in flight (its outcome unknown: undone too).
    assert run["steps_compensated"] == 2
    late = await client.post(f"/api/v1/runs/{run_id}/cancel", json={"reason": "again"})
    assert late.status_code == 409


async def test_unknown_ids_are_problems(
    client: httpx.AsyncClient, approver: httpx.AsyncClient
) -> None:
    r = await approver.post("/api/v1/approvals/nope", json={"decision": "grant"})
    assert r.status_code == 404 and r.json()["type"].endswith("/approval-not-found")
    r = await client.post("/api/v1/runs/nope/cancel", json={"reason": "x"})
    assert r.status_code == 404 and r.json()["type"].endswith("/run-not-found")
    r = await approver.post("/api/v1/approvals/nope", json={"decision": "maybe"})
    assert r.status_code == 422
