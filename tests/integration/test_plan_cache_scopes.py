"""The plan cache's scopes (migration 0160) against real Postgres 18 + pgvector: an entry
is stored once per tenant that may see it ('*' for all), partitioned by that scope."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from omnihub.settings import Settings
from projections.migrate import apply_migrations, quote_ident
from projections.plan_cache.store import PgPlanCacheStore, lookup_pool, migrate, to_pgvector
from tests.integration.test_plan_cache import EMBEDDER, cache, learn, planned, step


@pytest.fixture
async def pool() -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(Settings().postgres_dsn, min_size=1, max_size=4)
    yield pool
    await pool.close()


async def scopes(store: PgPlanCacheStore) -> list[tuple[str, str]]:
    rows = await store.pool.fetch(
        f"SELECT scope, tenant_id FROM {store.entries} ORDER BY scope, tenant_id"
    )
    return [(r["scope"], r["tenant_id"]) for r in rows]


async def share(store: PgPlanCacheStore, *grantees: str) -> None:
    async with store.pool.acquire() as conn, conn.transaction():
        template = "Book flight to {DESTINATION}"
        await store.share(conn, "acme", template, grantees, datetime.now(UTC), str(uuid.uuid4()))


async def test_an_entry_lives_in_each_scope_that_may_see_it_and_counts_once(
    pool: asyncpg.Pool,
) -> None:
    store = PgPlanCacheStore(pool, schema=f"pc_{uuid.uuid4().hex[:10]}")
    await migrate(pool, store.schema)
    await learn(store, planned("Book flight to Paris", [step("flights.book", to="Paris")]))
    assert await scopes(store) == [("acme", "acme")]
    await share(store, "globex", "initech")
    assert await scopes(store) == [("acme", "acme"), ("globex", "acme"), ("initech", "acme")]
    for tenant in ("acme", "globex", "initech"):
        found = await cache(store).lookup(tenant, "Book flight to Rome")
        assert found.hit is not None and "Rome" in found.hit.steps[0].arguments_json
    assert (await cache(store).lookup("umbrella", "Book flight to Rome")).hit is None
    assert len(await store.snapshot()) == 1  # listed once, whatever its scopes
    # a newer plan replaces the entry in every scope
    await learn(store, planned("Book flight to Oslo", [step("flights.book", dest="Oslo")]))
    found = await cache(store).lookup("initech", "Book flight to Rome")
    assert found.hit is not None and json.loads(found.hit.steps[0].arguments_json) == {
        "dest": "Rome"
    }
    await share(store, "*")
    assert await scopes(store) == [("*", "acme")]
    async with pool.acquire() as conn, conn.transaction():
        assert await store.invalidate(conn, "acme", None, datetime.now(UTC)) == 1
    assert await scopes(store) == []


async def test_migration_0160_moves_existing_entries_into_their_scopes(
    pool: asyncpg.Pool,
) -> None:
    schema = f"pc_{uuid.uuid4().hex[:10]}"
    await apply_migrations(pool, schema=schema, select=lambda m: 100 <= m.number < 160)
    (vector,) = await EMBEDDER.embed(["Book flight to {DESTINATION}"])
    now = datetime.now(UTC)
    for tenant, shared in (("acme", ["globex"]), ("globex", ["*"]), ("initech", [])):
        await pool.execute(
            f"INSERT INTO {quote_ident(schema)}.plan_cache_entries (tenant_id, template,"
            " slot_names, steps, embedding, model, source_plan_id, source_event_id,"
            " planned_at, expires_at, shared_with, pattern) VALUES ($1, $2, '{DESTINATION}',"
            " $3, $4::vector, 'm', 'p', $1, $5::timestamptz,"
            " $5::timestamptz + interval '1 day', $6, $2)",
            tenant,
            "Book flight to {DESTINATION}",
            json.dumps([{"step_id": "s1", "tool": "flights.book", "arguments_json": "{}"}]),
            to_pgvector(vector),
            now,
            shared,
        )
    await migrate(pool, schema)
    store = PgPlanCacheStore(pool, schema=schema)
    assert await scopes(store) == [
        ("*", "globex"),
        ("acme", "acme"),
        ("globex", "acme"),
        ("initech", "initech"),
    ]
    assert len(await store.snapshot()) == 3


async def test_lookups_on_their_own_pool_find_the_same_and_leave_no_session_state(
    pool: asyncpg.Pool,
) -> None:
    """The lookup pool skips asyncpg's reset on release: safe only because
    plan_cache_nearest's SET clauses restore the search settings on exit."""
    store = PgPlanCacheStore(pool, schema=f"pc_{uuid.uuid4().hex[:10]}")
    await migrate(pool, store.schema)
    await learn(store, planned("Book flight to Paris", [step("flights.book", to="Paris")]))
    await learn(store, planned("Book hotel in Paris", [step("hotels.book", city="Paris")]))
    lookups = await lookup_pool(Settings().postgres_dsn, max_size=1)
    try:
        own = PgPlanCacheStore(pool, schema=store.schema, lookups=lookups)
        (vector,) = await EMBEDDER.embed(["Book flight to {DESTINATION}"])
        now = datetime.now(UTC)
        shared = await store.nearest("acme", vector, ["DESTINATION"], now, ef_search=100)
        first = await own.nearest("acme", vector, ["DESTINATION"], now, ef_search=100)
        again = await own.nearest("acme", vector, ["DESTINATION"], now, exact=True)
        assert [c.template for c in first] == [c.template for c in shared]
        assert [c.template for c in again] == [c.template for c in shared]
        assert first[0].similarity == pytest.approx(shared[0].similarity, abs=1e-6)
        async with lookups.acquire() as conn:  # the same connection, not reset
            settings = await conn.fetchrow(
                "SELECT current_setting('hnsw.ef_search') AS ef,"
                " current_setting('hnsw.iterative_scan') AS scan,"
                " current_setting('enable_indexscan') AS indexscan"
            )
        assert dict(settings) == {"ef": "40", "scan": "off", "indexscan": "on"}
    finally:
        await lookups.close()
