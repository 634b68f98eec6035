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


async def test_happy_path_run_projection_ends_completed(
    client: httpx.AsyncClient, env: dict[str, str]
) -> None:
    proj = Projections(env)
    run_id = await post_goal(client, "say hello then upper world")
    run = await proj.until("SELECT * FROM runs WHERE run_id = $1 AND status = 'completed'", run_id)
    assert (run["steps_planned"], run["steps_completed"], run["planner"]) == (2, 2, "rules")


async def test_approval_shows_in_the_projection_and_grant_completes_the_run(
    client: httpx.AsyncClient, env: dict[str, str]
) -> None:
    proj = Projections(env)
    run_id = await post_goal(client, "say hi then approve the payment")
    approval = await proj.until(
        "SELECT * FROM approvals WHERE run_id = $1 AND status = 'pending'", run_id
    )
    assert (approval["step_id"], approval["tool"], approval["risk"]) == ("s2", "transform", 0.9)
    url = f"/api/v1/approvals/{approval['approval_id']}"
    r = await client.post(url, json={"decision": "grant", "approver": "alice", "reason": "ok"})
    assert r.status_code == 202, r.text
    assert r.json()["event_type"] == "approval_granted"
    again = await client.post(url, json={"decision": "deny", "approver": "mallory"})
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    await proj.until("SELECT 1 FROM runs WHERE run_id = $1 AND status = 'completed'", run_id)
    decided = await proj.row(
        "SELECT status, decided_by FROM approvals WHERE approval_id = $1", approval["approval_id"]
    )
    assert decided is not None and (decided["status"], decided["decided_by"]) == (
        "granted",
        "alice",
    )


async def test_denial_compensates_and_the_run_fails(
    client: httpx.AsyncClient, env: dict[str, str]
) -> None:
    proj = Projections(env)
    run_id = await post_goal(client, "save the draft then delete everything")
    approval = await proj.until(
        "SELECT * FROM approvals WHERE run_id = $1 AND status = 'pending'", run_id
    )
    r = await client.post(
        f"/api/v1/approvals/{approval['approval_id']}",
        json={"decision": "deny", "approver": "bob", "reason": "no"},
    )
    assert r.status_code == 202, r.text
    run = await proj.until("SELECT * FROM runs WHERE run_id = $1 AND status = 'failed'", run_id)
    assert run["steps_compensated"] == 1
    assert "denied by bob" in run["outcome_reason"]


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


async def test_unknown_ids_are_problems(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/approvals/nope", json={"decision": "grant", "approver": "a"})
    assert r.status_code == 404 and r.json()["type"].endswith("/approval-not-found")
    r = await client.post("/api/v1/runs/nope/cancel", json={"reason": "x"})
    assert r.status_code == 404 and r.json()["type"].endswith("/run-not-found")
    r = await client.post("/api/v1/approvals/nope", json={"decision": "maybe", "approver": "a"})
    assert r.status_code == 422
