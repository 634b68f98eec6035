"""Goal ingestion's HTTP contract, with in-memory fakes for the log and the key store."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.idempotency import Claim
from domain.events import Event, GoalReceived
from omnihub.settings import Settings
from streams.producer import AppendResult, LogUnavailable


class FakeAppender:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.down = False

    async def start(self) -> None: ...
    async def stop(self) -> None: ...

    async def append(self, event: Event) -> AppendResult:
        return (await self.append_many([event]))[0]

    async def append_many(self, events: Sequence[Event]) -> list[AppendResult]:
        if self.down:
            raise LogUnavailable("broker unreachable")
        await asyncio.sleep(0.01)
        self.events.extend(events)
        return [
            AppendResult(e.envelope.event_id, "omnihub.runs.v1", 0, len(self.events) - 1)
            for e in events
        ]


class FakeIdempotency:
    def __init__(self) -> None:
        self.data: dict[tuple[str, str], Claim] = {}

    async def claim(self, scope: str, key: str, fingerprint: str) -> Claim:
        found = self.data.get((scope, key))
        if found:
            return found
        self.data[(scope, key)] = Claim("pending", fingerprint)
        return Claim("new", fingerprint)

    async def complete(
        self, scope: str, key: str, fingerprint: str, response: dict[str, Any]
    ) -> None:
        self.data[(scope, key)] = Claim("done", fingerprint, response)

    async def release(self, scope: str, key: str) -> None:
        self.data.pop((scope, key), None)


@pytest.fixture
async def app_and_client() -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    app = create_app(Settings(max_body_bytes=4096))
    app.state.omnihub.appender = FakeAppender()
    app.state.omnihub.idempotency = FakeIdempotency()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield app, client


GOAL = {"tenant_id": "acme", "goal": "Book flight to Paris", "context": {"seat": "aisle"}}


async def test_post_goal_appends_goal_received_and_answers_202(app_and_client) -> None:  # type: ignore[no-untyped-def]
    app, client = app_and_client
    r = await client.post("/api/v1/goals", json=GOAL)
    assert r.status_code == 202, r.text
    body = r.json()
    assert r.headers["location"] == f"/api/v1/runs/{body['run_id']}"
    (event,) = app.state.omnihub.appender.events
    assert isinstance(event, GoalReceived)
    assert event.goal == GOAL["goal"] and event.envelope.tenant_id == "acme"
    assert body["event_id"] == event.envelope.event_id and body["offset"] == 0


async def test_same_idempotency_key_returns_the_same_run_and_appends_once(app_and_client) -> None:  # type: ignore[no-untyped-def]
    app, client = app_and_client
    headers = {"Idempotency-Key": "order-42"}
    first = await client.post("/api/v1/goals", json=GOAL, headers=headers)
    second = await client.post("/api/v1/goals", json=GOAL, headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert len(app.state.omnihub.appender.events) == 1


async def test_concurrent_retries_with_one_key_append_once(app_and_client) -> None:  # type: ignore[no-untyped-def]
    app, client = app_and_client
    headers = {"Idempotency-Key": "burst"}
    answers = await asyncio.gather(
        *(client.post("/api/v1/goals", json=GOAL, headers=headers) for _ in range(5))
    )
    assert sorted(a.status_code for a in answers).count(202) >= 1
    assert {a.status_code for a in answers} <= {202, 409}
    assert len(app.state.omnihub.appender.events) == 1


async def test_key_reused_for_another_request_is_422(app_and_client) -> None:  # type: ignore[no-untyped-def]
    _, client = app_and_client
    headers = {"Idempotency-Key": "k"}
    await client.post("/api/v1/goals", json=GOAL, headers=headers)
    r = await client.post("/api/v1/goals", json={**GOAL, "goal": "other"}, headers=headers)
    assert r.status_code == 422
    assert r.json()["type"].endswith("/idempotency-key-reused")


async def test_kafka_down_is_503_problem_and_nothing_appended(app_and_client) -> None:  # type: ignore[no-untyped-def]
    app, client = app_and_client
    app.state.omnihub.appender.down = True
    r = await client.post("/api/v1/goals", json=GOAL, headers={"Idempotency-Key": "x"})
    assert r.status_code == 503
    assert r.headers["content-type"] == "application/problem+json"
    assert "broker unreachable" in r.json()["detail"]
    assert app.state.omnihub.appender.events == []
    app.state.omnihub.appender.down = False  # the key was released: a retry succeeds
    assert (
        await client.post("/api/v1/goals", json=GOAL, headers={"Idempotency-Key": "x"})
    ).status_code == 202


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({**GOAL, "goal": "x" * 2001}, "goal"),
        ({**GOAL, "goal": ""}, "goal"),
        ({**GOAL, "tenant_id": "bad tenant!"}, "tenant_id"),
        ({"goal": "no tenant"}, "tenant_id"),
        ({**GOAL, "surprise": 1}, "surprise"),
        ({**GOAL, "context": {"n": 1}}, "context"),
    ],
)
async def test_invalid_goals_are_422_problems_naming_the_field(app_and_client, body, where) -> None:  # type: ignore[no-untyped-def]
    app, client = app_and_client
    r = await client.post("/api/v1/goals", json=body)
    assert r.status_code == 422
    problem = r.json()
    assert r.headers["content-type"] == "application/problem+json"
    assert problem["status"] == 422 and where in problem["detail"]
    assert app.state.omnihub.appender.events == []


async def test_malformed_json_is_a_422_problem(app_and_client) -> None:  # type: ignore[no-untyped-def]
    _, client = app_and_client
    r = await client.post(
        "/api/v1/goals", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422
    assert r.json()["type"].endswith("/validation-error")


async def test_oversize_body_is_413_before_parsing(app_and_client) -> None:  # type: ignore[no-untyped-def]
    app, client = app_and_client
    big = json.dumps({**GOAL, "context": {"blob": "y" * 8000}})
    r = await client.post(
        "/api/v1/goals", content=big, headers={"content-type": "application/json"}
    )
    assert r.status_code == 413
    assert r.json()["type"].endswith("/body-too-large")

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
        for _ in range(10):
            yield b"x" * 1000

    r = await client.post(
        "/api/v1/goals", content=chunks(), headers={"content-type": "application/json"}
    )
    assert r.status_code == 413
    assert app.state.omnihub.appender.events == []


async def test_openapi_is_served(app_and_client) -> None:  # type: ignore[no-untyped-def]
    _, client = app_and_client
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    assert "/api/v1/goals" in r.json()["paths"]
