"""Goal ingestion's HTTP contract, with in-memory fakes for the log, the idempotency store
and the gateway's key projection and limiters (the real authenticator checks the keys)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from api.idempotency import Claim
from api.security import key_material
from api.security.last_used import LastUsed
from api.security.limits import Admission, RateDecision
from api.security.principal import Authenticator
from api.security.quota import Taken
from apps.api import create_app
from domain.entitlements import Effective, Subscription, TenantTiers, effective
from domain.events import AuditFactObserved, Event, GoalReceived
from domain.tiers import TierName
from omnihub.settings import Settings
from projections.keys import StoredKey
from projections.killswitch import CachedSwitches
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


class FakeKeys:
    """The keys projection as a dict by prefix."""

    def __init__(self) -> None:
        self.by: dict[str, StoredKey] = {}

    def mint(self, tenant: str, scopes: tuple[str, ...]) -> str:
        new = key_material.generate(SECRET)
        self.by[new.prefix] = StoredKey(
            f"key-{new.prefix}",
            tenant,
            new.prefix,
            new.key_hash,
            scopes,
            "",
            datetime.now(UTC),
            "test",
            None,
            None,
            None,
        )
        return new.plaintext

    async def by_prefix(self, prefix: str) -> StoredKey | None:
        return self.by.get(prefix)


class Unlimited:
    async def admit(
        self, key_id: str, request_id: str, scope_granted: bool, **_: object
    ) -> Admission:
        return Admission(RateDecision(True, 60, 59, 60), slot=scope_granted)

    async def release(self, key_id: str, request_id: str, tenant_id: str = "-") -> None: ...


class CountingQuota:
    """Grants up to ``limit`` goals in all (None: every one); counts what it granted."""

    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit
        self.used = 0

    async def take(self, tenant_id: str, month: str, n: int, limit: int | None) -> Taken:
        left = n if self.limit is None else max(0, min(n, self.limit - self.used))
        self.used += left
        return Taken(left, self.used)

    async def give_back(self, tenant_id: str, month: str, n: int) -> None:
        self.used -= n


class FixedTiers:
    """Every tenant has ``tier`` by subscription (free by default), with no end."""

    def __init__(self, tier: TierName = "free") -> None:
        self.tier = tier

    async def effective(self, tenant_id: str) -> Effective:
        facts = TenantTiers(tenant_id)
        if self.tier != "free":
            facts = TenantTiers(tenant_id, Subscription(self.tier, None, "test"))
        return effective(facts, datetime.now(UTC))


class FakeRedis:
    """Only what the kill-switch check reads (no switch is engaged) and the keys' last
    uses (api/security/last_used.py) write."""

    def __init__(self) -> None:
        self.hashes: dict[str, dict[str, str]] = {}

    async def get(self, name: str) -> None:
        return None

    async def hset(self, name: str, key: str, value: str) -> int:
        self.hashes.setdefault(name, {})[key] = value
        return 1

    async def aclose(self) -> None: ...


SECRET = "unit-test-secret"


@pytest.fixture
async def app_and_client() -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    app = create_app(Settings(max_body_bytes=4096, secret_key=SECRET))
    state = app.state.omnihub
    state.appender = FakeAppender()
    state.idempotency = FakeIdempotency()
    state.redis = FakeRedis()
    state.switches = CachedSwitches(state.redis, 0)
    state.keys = FakeKeys()
    state.security.authenticator = Authenticator(state.keys, SECRET, 0)
    state.security.limits = Unlimited()
    state.security.tiers = FixedTiers("pro")
    state.security.quota = CountingQuota()  # type: ignore[assignment]
    state.security.last_used = LastUsed(state.redis, "omnihub")  # type: ignore[arg-type]
    key = state.keys.mint("acme", ("write",))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://test", headers={"Authorization": f"Bearer {key}"}
    ) as client:
        yield app, client


def goals_of(app: Any) -> list[Event]:
    """The appended goals (audit facts go through the same fake log)."""
    return [e for e in app.state.omnihub.appender.events if isinstance(e, GoalReceived)]


GOAL = {"tenant_id": "acme", "goal": "Book flight to Paris", "context": {"seat": "aisle"}}


async def test_post_goal_appends_goal_received_and_answers_202(app_and_client) -> None:  # type: ignore[no-untyped-def]
    app, client = app_and_client
    r = await client.post("/api/v1/goals", json=GOAL)
    assert r.status_code == 202, r.text
    body = r.json()
    assert r.headers["location"] == f"/api/v1/runs/{body['run_id']}"
    (event,) = goals_of(app)
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
    assert len(goals_of(app)) == 1


async def test_concurrent_retries_with_one_key_append_once(app_and_client) -> None:  # type: ignore[no-untyped-def]
    app, client = app_and_client
    headers = {"Idempotency-Key": "burst"}
    answers = await asyncio.gather(
        *(client.post("/api/v1/goals", json=GOAL, headers=headers) for _ in range(5))
    )
    assert sorted(a.status_code for a in answers).count(202) >= 1
    assert {a.status_code for a in answers} <= {202, 409}
    assert len(goals_of(app)) == 1


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
    assert goals_of(app) == []
    app.state.omnihub.appender.down = False  # the key was released: a retry succeeds
    assert (
        await client.post("/api/v1/goals", json=GOAL, headers={"Idempotency-Key": "x"})
    ).status_code == 202


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({**GOAL, "goal": "x" * 2001}, "goal"),
        ({**GOAL, "goal": ""}, "goal"),
        ({**GOAL, "goal": "   "}, "goal"),
        ({**GOAL, "goal": " \t\n\u200b "}, "goal"),
        ({**GOAL, "tenant_id": "bad tenant!"}, "tenant_id"),
        ({"tenant_id": "acme"}, "goal"),
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
    assert goals_of(app) == []


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
    assert goals_of(app) == []


async def test_openapi_is_served(app_and_client) -> None:  # type: ignore[no-untyped-def]
    _, client = app_and_client
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    assert "/api/v1/goals" in r.json()["paths"]


async def test_the_tenant_comes_from_the_key_and_may_be_omitted(app_and_client) -> None:  # type: ignore[no-untyped-def]
    app, client = app_and_client
    r = await client.post("/api/v1/goals", json={"goal": "no tenant given"})
    assert r.status_code == 202, r.text
    (event,) = goals_of(app)
    assert event.envelope.tenant_id == "acme" and event.envelope.actor.startswith("api-key:")


async def test_another_tenant_in_the_body_is_403_and_audited(app_and_client) -> None:  # type: ignore[no-untyped-def]
    app, client = app_and_client
    r = await client.post("/api/v1/goals", json={**GOAL, "tenant_id": "globex"})
    assert r.status_code == 403
    assert r.json()["type"].endswith("/tenant-mismatch")
    assert goals_of(app) == []
    facts = [e for e in app.state.omnihub.appender.events if isinstance(e, AuditFactObserved)]
    denied = [f for f in facts if f.outcome == "denied"]
    assert denied and denied[0].details["claimed_tenant"] == "globex"
    assert denied[0].envelope.run_id == "audit-acme"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer nonsense"}, 401),
        ({"Authorization": "Bearer omh_abcdefgh_" + "x" * 43}, 401),
        ({"X-API-Key": "omh_abcdefgh_" + "x" * 43}, 401),
    ],
)
async def test_missing_or_bad_keys_are_401_problems(app_and_client, headers, status) -> None:  # type: ignore[no-untyped-def]
    app, client = app_and_client
    client.headers.pop("Authorization")
    r = await client.post("/api/v1/goals", json=GOAL, headers=headers)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert goals_of(app) == []


async def test_a_read_key_cannot_post_goals(app_and_client) -> None:  # type: ignore[no-untyped-def]
    app, client = app_and_client
    reader = app.state.omnihub.keys.mint("acme", ("read",))
    r = await client.post("/api/v1/goals", json=GOAL, headers={"Authorization": f"Bearer {reader}"})
    assert r.status_code == 403 and r.json()["needed"] == "goals:write"


async def test_batch_answers_each_item(app_and_client) -> None:  # type: ignore[no-untyped-def]
    app, client = app_and_client
    items = [
        {"goal": "first"},
        {"goal": ""},
        {"goal": "keyed", "idempotency_key": "b-1"},
        {"goal": "other", "surprise": True},
    ]
    r = await client.post("/api/v1/goals:batch", json={"goals": items})
    assert r.status_code == 207, r.text
    body = r.json()
    assert [i["status"] for i in body["items"]] == [202, 422, 202, 422]
    assert (body["accepted"], body["rejected"]) == (2, 2)
    assert [g.goal for g in goals_of(app)] == ["first", "keyed"]
    again = await client.post("/api/v1/goals:batch", json={"goals": [items[2]]})
    assert again.json()["items"][0]["replayed"] is True
    assert again.json()["items"][0]["run_id"] == body["items"][2]["run_id"]
    assert len(goals_of(app)) == 2


async def test_batch_over_the_limit_is_refused_whole(app_and_client) -> None:  # type: ignore[no-untyped-def]
    app, client = app_and_client
    app.state.omnihub.settings.batch_max_goals = 3
    r = await client.post("/api/v1/goals:batch", json={"goals": [{"goal": "g"}] * 4})
    assert r.status_code == 413 and r.json()["limit"] == 3
    assert goals_of(app) == []
