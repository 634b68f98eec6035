"""The entitlements a goal is held to at acceptance (fakes for the tier and the counter;
tests/e2e/test_tiers.py runs the same against the real stack), and the pure rules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from api.security.tiers import TierReader, TiersUnavailable
from domain.audit_facts import fact_for
from domain.entitlements import Subscription, TenantTiers, effective, subscription_change
from domain.events import AuditFactObserved, PlanTemplateShared
from domain.plan_cache import DisabledPlanCache
from domain.risk_policy import TenantPolicies
from domain.tier_rules import approval_timeout, least_tier, month_of, too_many_steps, within
from domain.tiers import TIERS
from sagas.bridge import run_policy
from sagas.messages import RunPolicy, RunRef
from sagas.plan_source import PlanSource
from sagas.planner import PlanRequest, RuleBasedPlanner, rule_plan
from sagas.tools import ToolRegistry
from sagas.tools.transform import TransformTool
from sagas.tools.wait import WaitTool
from streams.topology import AUDIT_SOURCE_TYPES
from tests.factories import goal_received
from tests.unit.test_api_goals import (  # noqa: F401  (app_and_client: a fixture)
    CountingQuota,
    FixedTiers,
    app_and_client,
    goals_of,
)

GOAL = {"goal": "Book flight to Paris"}
NOW = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture
async def free(app_and_client: tuple[Any, httpx.AsyncClient]) -> AsyncIterator[Any]:  # noqa: F811
    app, client = app_and_client
    app.state.omnihub.security.tiers = FixedTiers("free")
    app.state.omnihub.security.quota = CountingQuota(limit=2)
    yield app, client


async def denials(app: Any) -> list[AuditFactObserved]:
    await app.state.omnihub.security.audit.drain()
    return [
        e
        for e in app.state.omnihub.appender.events
        if isinstance(e, AuditFactObserved) and e.category == "entitlement"
    ]


async def test_the_goal_past_the_month_is_402_naming_the_entitlement(free: Any) -> None:
    app, client = free
    assert [(await client.post("/api/v1/goals", json=GOAL)).status_code for _ in range(2)] == [
        202,
        202,
    ]
    r = await client.post("/api/v1/goals", json=GOAL)
    assert r.status_code == 402 and r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["type"].endswith("/entitlement-goals-per-month")
    assert (body["entitlement"], body["tier"], body["source"]) == (
        "goals_per_month",
        "free",
        "default",
    )
    assert body["upgrade_to"] == "free"  # the fake's limit is 2, below free's own 100
    assert len(goals_of(app)) == 2
    (fact,) = await denials(app)
    assert (fact.action, fact.outcome, fact.details["tier"]) == (
        "goals_per_month",
        "denied",
        "free",
    )


async def test_a_batch_past_the_month_accepts_what_is_left(free: Any) -> None:
    app, client = free
    r = await client.post("/api/v1/goals:batch", json={"goals": [GOAL, GOAL, GOAL]})
    assert r.status_code == 207, r.text
    statuses = [i["status"] for i in r.json()["items"]]
    assert statuses == [202, 202, 402]
    assert r.json()["items"][2]["problem"]["entitlement"] == "goals_per_month"
    assert len(goals_of(app)) == 2


@pytest.mark.parametrize(
    ("seconds", "status", "upgrade"),
    [("600", 202, None), ("86400", 402, "starter"), ("60", 402, "pro"), ("10", 422, None)],
)
async def test_the_approval_timeout_must_be_in_the_tiers_range(
    free: Any, seconds: str, status: int, upgrade: str | None
) -> None:
    app, client = free
    r = await client.post(
        "/api/v1/goals", json={**GOAL, "context": {"approval_timeout_s": seconds}}
    )
    assert r.status_code == status, r.text
    if status != 202:
        assert r.json()["entitlement"] == "approval_timeout_s"
        assert r.json().get("upgrade_to") == upgrade
        assert len(await denials(app)) == (1 if status == 402 else 0)


async def test_the_same_goal_is_allowed_after_an_upgrade(free: Any) -> None:
    app, client = free
    goal = {**GOAL, "context": {"approval_timeout_s": "86400"}}
    assert (await client.post("/api/v1/goals", json=goal)).status_code == 402
    app.state.omnihub.security.tiers = FixedTiers("starter")
    assert (await client.post("/api/v1/goals", json=goal)).status_code == 202


def test_pure_rules() -> None:
    assert least_tier(lambda t: t.plan_template_sharing) == "pro"
    assert least_tier(lambda t: t.max_plan_steps > 1000) is None
    assert within(300, TIERS["free"].approval_timeout_s)
    assert not within(299, TIERS["free"].approval_timeout_s)
    assert approval_timeout({}) is None and approval_timeout({"approval_timeout_s": "90"}) == 90
    for bad in ("-1", "0", "1.5", "soon", ""):
        with pytest.raises(ValueError, match="approval_timeout_s"):
            approval_timeout({"approval_timeout_s": bad})
    assert month_of(datetime(2026, 1, 31, 23, 59, tzinfo=UTC)) == "2026-01"


async def test_sharing_a_template_needs_the_tier_and_stopping_never_does(free: Any) -> None:
    app, client = free
    admin = {"Authorization": "Bearer " + app.state.omnihub.keys.mint("acme", ("admin",))}
    share = {"template": "Book flight to {DESTINATION}", "shared_with": ["beta"]}
    r = await client.put("/api/v1/plan-templates/sharing", json=share, headers=admin)
    assert r.status_code == 402, r.text
    assert (r.json()["entitlement"], r.json()["upgrade_to"]) == ("plan_template_sharing", "pro")
    stop = await client.put(
        "/api/v1/plan-templates/sharing", json={**share, "shared_with": []}, headers=admin
    )
    assert stop.status_code == 202, stop.text
    app.state.omnihub.security.tiers = FixedTiers("pro")
    r = await client.put("/api/v1/plan-templates/sharing", json=share, headers=admin)
    assert r.status_code == 202 and r.json()["shared_with"] == ["beta"]
    shared = [e for e in app.state.omnihub.appender.events if isinstance(e, PlanTemplateShared)]
    assert [e.shared_with for e in shared] == [(), ("beta",)]
    assert [f.action for f in await denials(app)] == ["plan_template_sharing"]


def test_a_run_starts_with_its_tiers_entitlements_and_asked_timeout() -> None:
    goal = goal_received(tenant="acme")
    pro = effective(TenantTiers("acme", Subscription("pro", None, "e")), datetime.now(UTC))
    policy = run_policy(goal, RunPolicy(), TenantPolicies(), pro)
    assert (policy.tier, policy.max_plan_steps, policy.llm_planner) == ("pro", 25, True)
    free = run_policy(goal, RunPolicy(), TenantPolicies(), effective(TenantTiers("acme"), NOW))
    assert (free.tier, free.max_plan_steps, free.llm_planner) == ("free", 5, False)
    asked = replace(goal, context={"approval_timeout_s": "600"})
    assert run_policy(asked, RunPolicy(), TenantPolicies(), None).approval_timeout_s == 600.0
    # Without a lookup (or before tiers) a run keeps the old defaults: no limits.
    old = run_policy(goal, RunPolicy(), TenantPolicies(), None)
    assert (old.tier, old.max_plan_steps, old.llm_planner) == ("", 0, True)


def test_a_plan_over_the_step_limit_has_a_clear_cause() -> None:
    assert too_many_steps(5, 5, "free") is None and too_many_steps(99, 0, "") is None
    cause = too_many_steps(6, 5, "free")
    assert cause == (
        "entitlement_exceeded: max_plan_steps: the plan has 6 steps, the free tier allows 5;"
        " the starter tier allows it"
    )
    assert (too_many_steps(101, 100, "enterprise") or "").endswith("no tier allows it")


class Switches:
    async def is_engaged(self, feature: str) -> bool:
        return False


class ModelPlanner:
    name = "llm"
    model = "openai/test"

    def __init__(self) -> None:
        self.asked = 0

    async def propose(self, request: PlanRequest) -> dict[str, Any]:
        self.asked += 1
        return rule_plan(request.goal)


async def test_without_the_llm_planner_entitlement_the_rules_plan() -> None:
    llm = ModelPlanner()
    tools = ToolRegistry([TransformTool(), WaitTool()])
    source = PlanSource(DisabledPlanCache(), llm, RuleBasedPlanner(), tools, Switches())
    run = RunRef("r1", "acme")
    made = await source.plan(run, "say hi", {}, llm_allowed=False)
    assert (made.planner, llm.asked) == ("rules", 0)
    made = await source.plan(run, "say hi", {}, llm_allowed=True)
    assert (made.planner, llm.asked) == ("openai/test", 1)


async def test_the_reader_caches_facts_but_evaluates_expiry_on_every_read() -> None:
    ends = NOW + timedelta(seconds=30)
    facts = TenantTiers("acme", Subscription("pro", ends, "e1"))
    loads: list[str] = []

    async def load(tenant_id: str) -> TenantTiers:
        loads.append(tenant_id)
        return facts

    clock, now = [0.0], [NOW]
    reader = TierReader(load, ttl_s=1.0, clock=lambda: clock[0], now=lambda: now[0])
    assert (await reader.effective("acme")).tier == "pro"
    now[0] = ends  # the subscription ends while its facts are still cached
    assert (await reader.effective("acme")).tier == "free" and loads == ["acme"]
    facts = TenantTiers("acme", Subscription("enterprise", None, "e2"))
    assert (await reader.effective("acme")).tier == "free"  # cached for ttl_s
    clock[0] = 1.0
    assert (await reader.effective("acme")).tier == "enterprise" and loads == ["acme"] * 2


async def test_a_reader_that_cannot_load_raises_unavailable() -> None:
    async def down(tenant_id: str) -> TenantTiers:
        raise TiersUnavailable("connection refused")

    with pytest.raises(TiersUnavailable):
        await TierReader(down, ttl_s=1.0, default="starter").effective("acme")


def test_a_subscription_change_is_an_audit_fact_of_its_tenant() -> None:
    event = subscription_change("acme", "pro", actor="user:op", reason="paid", request_id="r")
    assert event.EVENT_TYPE in AUDIT_SOURCE_TYPES
    category, action, outcome, subject, resource, details = fact_for(event) or ("",) * 6
    assert (category, action, outcome, subject) == (
        "subscription",
        "set_tier",
        "success",
        "user:op",
    )
    assert resource == "tenant:acme" and details["tier"] == "pro"
