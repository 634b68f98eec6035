"""The plan cache as a projection of the Kafka log: exactly once, and rebuildable."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import numpy as np
import pytest

from domain import ids
from domain.events import Event, PlanCacheInvalidated, PlanTemplateShared
from omnihub.settings import Settings
from projections.plan_cache.projector import PlanCacheFolder
from projections.plan_cache.store import PgPlanCacheStore, migrate
from streams.admin import ensure_declared_topics
from streams.codec import EventCodec
from streams.follower import LogConsumer
from streams.producer import KafkaEventAppender
from streams.schema_registry import SchemaRegistry
from streams.topology import PLAN_CACHE
from tests.integration.test_plan_cache import EMBEDDER, cache, planned, step


@pytest.fixture
async def pool() -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(Settings().postgres_dsn, min_size=1, max_size=4)
    yield pool
    await pool.close()


async def fresh_store(pool: asyncpg.Pool) -> PgPlanCacheStore:
    schema = f"pc_{uuid.uuid4().hex[:10]}"
    await migrate(pool, schema)
    return PgPlanCacheStore(pool, schema=schema)


def control(cls: type[Event], tenant: str, at: datetime, *fields: Any) -> Event:
    env = ids.envelope(
        cls,
        run_id=f"plan-cache-{tenant}",
        tenant_id=tenant,
        actor="user:ops",
        correlation_id=str(uuid.uuid4()),
        discriminator=(str(uuid.uuid4()),),
        occurred_at=at,
    )
    return cls(env, *fields)


def the_log(t0: datetime) -> list[Event]:
    at = [t0 + timedelta(seconds=i) for i in range(10)]
    flight = [step("flights.book", to="Paris")]
    return [
        planned("Book flight to Paris", flight, "acme", at[0]),
        planned("Book flight to Rome", [step("flights.book", to="Rome")], "acme", at[1]),
        planned("Refund order 12345", [step("payments.refund", order=12345)], "acme", at[0]),
        planned("Cancel order 4411", [step("orders.cancel", id=4411)], "acme", at[0]),
        planned("Track order 9", [step("orders.track", id=9)], "globex", at[2]),
        planned(
            "Summarize https://a.example/x",
            [step("llm.summarize", url="https://a.example/x")],
            "acme",
            at[3],
        ),
        planned("Track order 10", [step("orders.track", id=10)], "initech", at[3], "rules"),
        dataclasses.replace(
            planned("Refund order 7", [step("payments.refund", order=7)], "acme", at[4]),
            from_cache=True,
        ),
        control(PlanTemplateShared, "acme", at[5], "Book flight to {DESTINATION}", ("globex",)),
        control(PlanCacheInvalidated, "acme", at[6], "template", "Cancel order {ORDER_ID}", "x"),
    ]


def projector(settings: Settings, store: PgPlanCacheStore, codec: EventCodec) -> LogConsumer:
    """The plan-cache consumer over ``store`` (what ``omnihub plan-cache run`` runs)."""
    folder = PlanCacheFolder(store, EMBEDDER, ttl_s=settings.plan_cache_ttl_s)
    return LogConsumer(settings, PLAN_CACHE, codec, [folder])


def comparable(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], np.ndarray]:
    vectors = np.array([json.loads(r["embedding"]) for r in rows], dtype=np.float32)
    return [{k: v for k, v in r.items() if k != "embedding"} for r in rows], vectors


async def test_the_log_folds_once_and_a_rebuild_gives_the_same_index(pool: asyncpg.Pool) -> None:
    settings = Settings(topic_prefix=f"pc{uuid.uuid4().hex[:10]}")
    await ensure_declared_topics(settings)
    codec = EventCodec(SchemaRegistry.from_dir(settings.schemas_dir))
    appender = KafkaEventAppender(settings, codec)
    now = datetime.now(UTC).replace(microsecond=0)
    try:
        for event in the_log(now):
            await appender.append(event)
    finally:
        await appender.stop()

    live_store = await fresh_store(pool)
    live = projector(settings, live_store, codec)
    await live.catch_up()
    rows = await live_store.snapshot()
    assert [(r["tenant_id"], r["template"]) for r in rows] == [
        ("acme", "Book flight to {DESTINATION}"),
        ("acme", "Refund order {ORDER_ID}"),
        ("acme", "Summarize {URL}"),
        ("globex", "Track order {ORDER_ID}"),
    ]  # cancel: invalidated; rules and cache-served plans: not learned from
    flight = rows[0]
    assert flight["shared_with"] == ["globex"]
    assert flight["planned_at"] == now + timedelta(seconds=1)  # the newer plan (Rome) won
    assert flight["expires_at"] == flight["planned_at"] + timedelta(hours=24)
    assert "{{DESTINATION}}" in flight["steps"]
    hit = await cache(live_store, now + timedelta(minutes=1)).lookup(
        "globex", "Book flight to Oslo"
    )
    assert hit.hit is not None and "Oslo" in hit.hit.steps[0].arguments_json

    await live.catch_up()  # redelivery from the stored positions changes nothing
    assert await live_store.snapshot() == rows

    rebuilt_store = await fresh_store(pool)
    await projector(settings, rebuilt_store, codec).catch_up()
    expected, vectors = comparable(rows)
    got, rebuilt_vectors = comparable(await rebuilt_store.snapshot())
    assert got == expected
    np.testing.assert_allclose(rebuilt_vectors, vectors, atol=1e-5)

    await live_store.reset(live.name)  # in-place rebuild: empty, then replay
    assert await live_store.snapshot() == []
    await live.catch_up()
    got, replayed_vectors = comparable(await live_store.snapshot())
    assert got == expected
    np.testing.assert_allclose(replayed_vectors, vectors, atol=1e-5)
