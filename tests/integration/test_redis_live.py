"""The Redis live views on a real Redis: served per tenant, deduped, and bounded in time."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis

from domain.events import Event
from omnihub.settings import Settings
from projections.redis_model import Keyspace, Retention
from projections.redis_store import RedisProjection
from streams.consumer import Record
from tests.integration.test_projection_store import story

DAY = Retention(timedelta(days=1))


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(Settings().redis_url)
    yield client
    await client.aclose()


async def project(projection: RedisProjection, partition: int, events: list[Event]) -> None:
    records = [Record(offset, event) for offset, event in enumerate(events)]
    await projection.apply("runs", partition, records)


async def ttl(redis: Redis, key: str) -> int:
    return int(await redis.ttl(key))


async def test_finished_runs_expire_running_ones_stay_and_duplicates_change_nothing(
    redis: Redis,
) -> None:
    prefix = f"live{uuid.uuid4().hex[:8]}"
    projection = RedisProjection(redis, prefix, retention=DAY)
    now = datetime.now(UTC)
    old = story("old", "acme", 0, at=now - timedelta(days=30))  # ended a month ago
    recent = story("recent", "acme", 3, at=now - timedelta(minutes=10))  # failed just now
    running = story("running", "acme", 0, at=now)[:4]
    late_copy = old[-1]  # a redelivered run_completed, later in the same partition
    await project(projection, 0, [*old, *recent, late_copy])
    await project(projection, 1, running)
    ks = Keyspace(prefix, "g0")

    assert 3500 < await ttl(redis, ks.run("old")) <= 3600  # past due: only the grace left
    assert await ttl(redis, ks.run_seen("old")) == await ttl(redis, ks.run("old"))
    ended = recent[-1].envelope.occurred_at
    expected = (ended + timedelta(days=1) - datetime.now(UTC)).total_seconds()
    assert abs(await ttl(redis, ks.run("recent")) - expected) < 5
    assert await ttl(redis, ks.run("running")) == -1  # no expiry while it runs
    assert await ttl(redis, ks.run_seen("running")) == -1
    assert not await redis.exists(f"{prefix}:g0:seen")  # no ever-growing global set

    live = await projection.live("acme")
    counters = live["counters"]
    assert (counters["goals"], counters["completions"], counters["failures"]) == (3, 1, 1)
    assert counters["active"] == 1  # the duplicate completion counted nothing
    assert [r.run_id for r in live["recent"]] == ["running", "recent", "old"]
    assert (await projection.live("globex"))["recent"] == []

    # When live processing has dropped the old run and a rebuild still holds it (grace),
    # the checksums at a later instant agree: past-due keys are left out of both.
    rebuilt = RedisProjection(redis, prefix, "g1", retention=DAY)
    await project(rebuilt, 0, [*old, *recent, late_copy])
    await project(rebuilt, 1, running)
    await redis.delete(ks.run("old"), ks.run_seen("old"))
    later = datetime.now(UTC) + timedelta(minutes=1)
    live_sum, rebuilt_sum = await projection.checksum(later), await rebuilt.checksum(later)
    assert live_sum == rebuilt_sum
    assert await rebuilt.checksum(later) != await rebuilt.checksum(later - timedelta(days=60))
    await redis.delete(*[k async for k in redis.scan_iter(f"{prefix}:*")])
