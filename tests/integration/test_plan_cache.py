"""The semantic plan cache against real Postgres 18 + pgvector and the real model."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from redis.asyncio import Redis

from domain import ids
from domain.events import PlanGenerated, PlanStep
from domain.templates import extract
from omnihub.settings import Settings
from projections.plan_cache.adapter import SemanticPlanCache, fixed
from projections.plan_cache.evaluation import SPLITS, load_pairs
from projections.plan_cache.fold import StoredPlan, stored_plan
from projections.plan_cache.onnx_embedder import OnnxEmbedder
from projections.plan_cache.store import PgPlanCacheStore, lookup_pool, migrate
from sagas.killswitch import RedisKillSwitches
from sagas.plan_source import PlanSource
from sagas.planner import RuleBasedPlanner
from sagas.tools import ToolRegistry
from sagas.tools.transform import TransformTool

TTL = timedelta(hours=24)
EMBEDDER = OnnxEmbedder()


@pytest.fixture
async def store() -> AsyncIterator[PgPlanCacheStore]:
    pool = await asyncpg.create_pool(Settings().postgres_dsn, min_size=1, max_size=4)
    lookups = await lookup_pool(Settings().postgres_dsn)  # as the worker's cache
    schema = f"pc_{uuid.uuid4().hex[:10]}"
    await migrate(pool, schema)
    yield PgPlanCacheStore(pool, schema=schema, lookups=lookups)
    await lookups.close()
    await pool.close()


def planned(
    goal: str,
    steps: list[PlanStep],
    tenant: str = "acme",
    at: datetime | None = None,
    planner: str = "openai/gpt-4o-mini",
) -> PlanGenerated:
    """The ``plan_generated`` a saga records after the model planned ``goal``."""
    run_id = str(uuid.uuid4())
    template = extract(goal)
    env = ids.envelope(
        PlanGenerated,
        run_id=run_id,
        tenant_id=tenant,
        actor="saga",
        correlation_id=run_id,
        occurred_at=at or datetime.now(UTC),
    )
    return PlanGenerated(
        env, f"plan-{run_id}", tuple(steps), planner, False, None, template.text, template.slots
    )


async def learn(store: PgPlanCacheStore, event: PlanGenerated) -> bool:
    plan = stored_plan(event, TTL)
    assert plan is not None
    return await put(store, plan)


async def put(store: PgPlanCacheStore, plan: StoredPlan) -> bool:
    (vector,) = await EMBEDDER.embed([plan.template])
    async with store.pool.acquire() as conn, conn.transaction():
        return await store.put(conn, plan, vector)


def cache(store: PgPlanCacheStore, now: datetime | None = None) -> SemanticPlanCache:
    clock = (lambda: now) if now else (lambda: datetime.now(UTC))
    threshold = Settings().plan_cache_threshold
    return SemanticPlanCache(fixed(store), EMBEDDER, threshold=threshold, clock=clock)


def step(tool: str, **arguments: object) -> PlanStep:
    return PlanStep("s1", tool, json.dumps(arguments))


@pytest.mark.parametrize("split", ["test", "dev"])
async def test_labelled_pairs_through_the_hnsw_index_serve_only_right_plans(
    store: PgPlanCacheStore, split: str
) -> None:
    pairs = load_pairs(SPLITS[split])
    right = wrong = 0
    for i, pair in enumerate(pairs):
        tenant = f"tenant-{i}"
        plan = stored_plan(planned(pair.a, list(pair.plan_a), tenant), TTL)
        if plan is not None:  # a plan whose values cannot be followed is never stored
            await put(store, plan)
        found = await cache(store).lookup(tenant, pair.b)
        if found.hit is not None:
            got = [(s.tool, json.loads(s.arguments_json)) for s in found.hit.steps]
            ok = got == pair.expected_plan()
            right, wrong = right + ok, wrong + (not ok)
    assert wrong == 0
    assert right / sum(p.hit for p in pairs) >= 0.85


async def test_one_template_keeps_an_entry_per_written_back_value(
    store: PgPlanCacheStore,
) -> None:
    for fmt in ("PDF", "CSV"):
        plan = [step("dashboards.export", name="Growth", format=fmt.lower())]
        await learn(store, planned(f'Export the dashboard "Growth" as {fmt}', plan))
    rows = await store.snapshot()
    assert [r["pattern"] for r in rows] == [
        'Export the dashboard "{QUOTED}" as CSV',
        'Export the dashboard "{QUOTED}" as PDF',
    ]
    assert {r["template"] for r in rows} == {'Export the dashboard "{QUOTED}" as {AS_ID}'}
    found = await cache(store).lookup("acme", 'Export the dashboard "Ops" as CSV')
    assert found.hit is not None
    assert json.loads(found.hit.steps[0].arguments_json) == {"name": "Ops", "format": "csv"}
    assert (await cache(store).lookup("acme", 'Export the dashboard "Ops" as XLSX')).hit is None
    async with store.pool.acquire() as conn, conn.transaction():
        template = 'Export the dashboard "{QUOTED}" as {AS_ID}'
        assert await store.invalidate(conn, "acme", template, datetime.now(UTC)) == 2


async def test_a_hit_injects_the_new_goals_values(store: PgPlanCacheStore) -> None:
    plan = [
        step("orders.get", order_id=12345),
        PlanStep(
            "s2",
            "payments.refund",
            json.dumps({"order": "12345", "note": "refund 12345"}),
            ("s1",),
            0.6,
            "payments.charge",
            20.0,
            2,
        ),
    ]
    await learn(store, planned("Refund order 12345", plan))
    found = await cache(store).lookup("acme", "Refund order 99881")
    assert found.hit is not None
    assert found.hit.similarity == pytest.approx(1.0, abs=1e-4)
    assert found.template == "Refund order {ORDER_ID}"
    assert dict(found.slots) == {"ORDER_ID": "99881"}
    first, second = found.hit.steps
    assert json.loads(first.arguments_json) == {"order_id": 99881}
    assert json.loads(second.arguments_json) == {"order": "99881", "note": "refund 99881"}
    assert (second.depends_on, second.compensation, second.max_attempts) == (
        ("s1",),
        "payments.charge",
        2,
    )
    assert found.hit.model == "openai/gpt-4o-mini"


async def test_entries_expire_after_the_ttl(store: PgPlanCacheStore) -> None:
    at = datetime.now(UTC) - timedelta(hours=23)
    await learn(store, planned("Track order 555", [step("orders.track", id="555")], at=at))
    assert (await cache(store).lookup("acme", "Track order 777")).hit is not None
    later = at + TTL + timedelta(seconds=1)
    assert (await cache(store, later).lookup("acme", "Track order 777")).hit is None
    assert await store.purge_expired(later) == 1
    assert await store.snapshot() == []


async def test_a_tenant_never_gets_another_tenants_plan_unless_shared(
    store: PgPlanCacheStore,
) -> None:
    await learn(store, planned("Book flight to Paris", [step("flights.book", to="Paris")]))
    assert (await cache(store).lookup("acme", "Book flight to Rome")).hit is not None
    assert (await cache(store).lookup("globex", "Book flight to Rome")).hit is None

    async def share(*grantees: str) -> None:
        async with store.pool.acquire() as conn, conn.transaction():
            await store.share(
                conn,
                "acme",
                "Book flight to {DESTINATION}",
                grantees,
                datetime.now(UTC),
                str(uuid.uuid4()),
            )

    await share("globex")
    assert (await cache(store).lookup("globex", "Book flight to Rome")).hit is not None
    assert (await cache(store).lookup("initech", "Book flight to Rome")).hit is None
    await share("*")
    assert (await cache(store).lookup("initech", "Book flight to Rome")).hit is not None
    await share()
    assert (await cache(store).lookup("globex", "Book flight to Rome")).hit is None


async def test_invalidation_per_template_and_per_tenant(store: PgPlanCacheStore) -> None:
    now = datetime.now(UTC)
    await learn(store, planned("Book flight to Paris", [step("flights.book", to="Paris")], at=now))
    await learn(store, planned("Cancel order 4411", [step("orders.cancel", id=4411)], at=now))
    async with store.pool.acquire() as conn, conn.transaction():
        assert await store.invalidate(conn, "acme", "Book flight to {DESTINATION}", now) == 1
    assert (await cache(store).lookup("acme", "Book flight to Rome")).hit is None
    assert (await cache(store).lookup("acme", "Cancel order 1")).hit is not None
    # a plan made before the invalidation (read late from another partition) stays out
    late = planned("Book flight to Oslo", [step("flights.book", to="Oslo")], at=now)
    assert not await learn(store, late)
    fresh = planned(
        "Book flight to Oslo", [step("flights.book", to="Oslo")], at=now + timedelta(seconds=1)
    )
    assert await learn(store, fresh)
    async with store.pool.acquire() as conn, conn.transaction():
        assert await store.invalidate(conn, "acme", None, now + timedelta(seconds=2)) == 2
    assert await store.snapshot() == []


async def test_a_miss_falls_through_to_planning_and_a_hit_skips_the_planner(
    store: PgPlanCacheStore,
) -> None:
    settings = Settings()
    redis = Redis.from_url(settings.redis_url)
    tools = ToolRegistry([TransformTool()])
    source = PlanSource(
        cache(store), RuleBasedPlanner(), RuleBasedPlanner(), tools, RedisKillSwitches(redis)
    )
    run = _Run(str(uuid.uuid4()), f"t-{uuid.uuid4().hex[:8]}")
    try:
        missed = await source.plan(run, "echo the weather in Paris", {})
        assert (missed.from_cache, missed.planner) == (False, "rules")
        assert (missed.template, dict(missed.slots)) == (
            "echo the weather in {LOCATION}",
            {"LOCATION": "Paris"},
        )
        model_plan = [step("transform", op="echo", value="weather in Paris")]
        await learn(store, planned("echo the weather in Paris", model_plan, run.tenant_id))
        served = await source.plan(run, "echo the weather in Lisbon", {})
    finally:
        await redis.aclose()
    assert served.from_cache
    assert served.planner == "cache:openai/gpt-4o-mini"
    assert served.similarity == pytest.approx(1.0, abs=1e-4)
    assert json.loads(served.steps[0].arguments_json)["value"] == "weather in Lisbon"


class _Run:
    def __init__(self, run_id: str, tenant_id: str) -> None:
        self.run_id = run_id
        self.tenant_id = tenant_id
