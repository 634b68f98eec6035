"""The gateway dependency's answers and their order, with a scripted limiter: 429 over the
rate (before 403, so probing costs quota), 403 without the scope, 429 without a slot, 503
when the limiter cannot answer, and a slot given back only by the request that holds it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from api.security.last_used import LastUsed
from api.security.limits import Admission, LimiterUnavailable, RateDecision
from api.security.principal import Authenticator
from apps.api import create_app
from domain.events import AuditFactObserved, GoalReceived
from omnihub.settings import Settings
from projections.killswitch import CachedSwitches
from tests.unit.test_api_goals import (
    SECRET,
    CountingQuota,
    FakeAppender,
    FakeIdempotency,
    FakeKeys,
    FakeRedis,
    FixedTiers,
)

GOAL = {"goal": "Book flight to Paris"}


class ScriptedLimiter:
    """Answers what the test sets; records what it was asked."""

    def __init__(self) -> None:
        self.rate_allowed = True
        self.slots = True
        self.down = False
        self.asked: list[tuple[str, bool]] = []
        self.released: list[str] = []

    async def admit(
        self, key_id: str, request_id: str, scope_granted: bool, **_: object
    ) -> Admission:
        if self.down:
            raise LimiterUnavailable("connection refused")
        self.asked.append((request_id, scope_granted))
        rate = RateDecision(self.rate_allowed, 60, 7 if self.rate_allowed else 0, 42)
        slot = self.rate_allowed and scope_granted and self.slots
        refused = ""
        if not self.rate_allowed:
            refused = "requests_per_minute_per_key"
        elif scope_granted and not slot:
            refused = "in_flight_per_tenant"
        return Admission(rate, slot, refused)

    async def release(self, key_id: str, request_id: str, tenant_id: str = "-") -> None:
        self.released.append(request_id)


@pytest.fixture
async def gateway() -> AsyncIterator[tuple[Any, ScriptedLimiter, dict[str, str]]]:
    app = create_app(Settings(secret_key=SECRET))
    state = app.state.omnihub
    state.appender, state.idempotency, state.redis = FakeAppender(), FakeIdempotency(), FakeRedis()
    state.switches = CachedSwitches(state.redis, 0)
    keys = FakeKeys()
    state.security.authenticator = Authenticator(keys, SECRET, 0)
    state.security.limits = limiter = ScriptedLimiter()
    state.security.tiers = FixedTiers()
    state.security.quota = CountingQuota()  # type: ignore[assignment]
    state.security.last_used = LastUsed(state.redis, "omnihub")
    minted = {"writer": keys.mint("acme", ("write",)), "reader": keys.mint("acme", ("read",))}
    yield app, limiter, minted


async def post(app: Any, key: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.post(
            "/api/v1/goals", json=GOAL, headers={"Authorization": f"Bearer {key}"}
        )


async def facts(app: Any) -> list[AuditFactObserved]:
    await app.state.omnihub.security.audit.drain()
    return [e for e in app.state.omnihub.appender.events if isinstance(e, AuditFactObserved)]


async def test_an_admitted_request_reports_its_quota_and_gives_its_slot_back(gateway) -> None:  # type: ignore[no-untyped-def]
    app, limiter, keys = gateway
    r = await post(app, keys["writer"])
    assert r.status_code == 202, r.text
    assert (r.headers["ratelimit-limit"], r.headers["ratelimit-remaining"]) == ("60", "7")
    assert r.headers["ratelimit-reset"] == "42" and "retry-after" not in r.headers
    ((rid, granted),) = limiter.asked
    assert granted and limiter.released == [rid]
    assert [(f.category, f.outcome) for f in await facts(app)] == [("authn", "success")]


async def test_over_the_rate_is_429_before_the_scope_is_judged(gateway) -> None:  # type: ignore[no-untyped-def]
    app, limiter, keys = gateway
    limiter.rate_allowed = False
    for key in (keys["writer"], keys["reader"]):
        r = await post(app, key)
        assert r.status_code == 429 and r.json()["type"].endswith("/rate-limited")
        assert r.json()["entitlement"] == "requests_per_minute_per_key"
        assert r.json()["tier"] == "free"
        assert r.headers["retry-after"] == "42" and r.headers["ratelimit-remaining"] == "0"
    assert [granted for _, granted in limiter.asked] == [True, False]  # both were counted
    assert limiter.released == []
    # Each refusal is audited, naming the entitlement (no success was recorded).
    assert [(f.category, f.action, f.outcome) for f in await facts(app)] == [
        ("entitlement", "requests_per_minute_per_key", "denied")
    ] * 2


async def test_a_missing_scope_is_403_counted_audited_and_holds_no_slot(gateway) -> None:  # type: ignore[no-untyped-def]
    app, limiter, keys = gateway
    r = await post(app, keys["reader"])
    assert r.status_code == 403 and r.json()["needed"] == "goals:write"
    assert [granted for _, granted in limiter.asked] == [False]
    assert limiter.released == []
    (denied,) = await facts(app)
    assert (denied.category, denied.outcome) == ("authz", "denied")


async def test_no_free_slot_is_429_too_many_concurrent_requests(gateway) -> None:  # type: ignore[no-untyped-def]
    app, limiter, keys = gateway
    limiter.slots = False
    r = await post(app, keys["writer"])
    assert r.status_code == 429 and r.json()["type"].endswith("/too-many-concurrent-requests")
    assert r.json()["entitlement"] == "in_flight_per_tenant"
    assert "more than 4 requests in flight for this tenant (free tier)" in r.json()["detail"]
    assert r.headers["retry-after"] == "1" and limiter.released == []
    assert sorted((f.category, f.outcome) for f in await facts(app)) == [
        ("authn", "success"),
        ("entitlement", "denied"),
    ]
    assert not [e for e in app.state.omnihub.appender.events if isinstance(e, GoalReceived)]


async def test_a_limiter_that_cannot_answer_fails_closed_with_503(gateway) -> None:  # type: ignore[no-untyped-def]
    app, limiter, keys = gateway
    limiter.down = True
    r = await post(app, keys["writer"])
    assert r.status_code == 503 and r.json()["type"].endswith("/limiter-unavailable")
    assert r.headers["retry-after"] == "5" and limiter.released == []
