"""Rate and concurrency limits against the real Redis of the test stack."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from api.security.limits import RedisConcurrencyLimiter, RedisRateLimiter
from omnihub.settings import get_settings


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(get_settings().redis_url)
    yield client
    await client.aclose()


async def test_a_concurrent_burst_from_many_clients_never_exceeds_the_limit(redis: Redis) -> None:
    key = f"k-{uuid.uuid4()}"
    # Several independent connections, as several API processes would have.
    clients = [Redis.from_url(get_settings().redis_url) for _ in range(4)]
    limiters = [RedisRateLimiter(c, limit=60, window_s=60) for c in clients]
    try:
        decisions = await asyncio.gather(
            *(limiters[i % 4].hit(key, str(uuid.uuid4())) for i in range(200))
        )
    finally:
        for c in clients:
            await c.aclose()
    allowed = [d for d in decisions if d.allowed]
    assert len(allowed) == 60
    assert sorted(d.remaining for d in allowed) == list(range(60))
    refused = [d for d in decisions if not d.allowed]
    assert all(d.remaining == 0 and 0 < d.reset_s <= 60 for d in refused)
    assert refused[0].headers()["Retry-After"] == str(refused[0].reset_s)
    assert await redis.zcard(f"omnihub:ratelimit:{key}") == 60


async def test_the_window_slides(redis: Redis) -> None:
    limiter = RedisRateLimiter(redis, limit=3, window_s=1.0)
    key = f"k-{uuid.uuid4()}"
    assert all([(await limiter.hit(key, str(uuid.uuid4()))).allowed for _ in range(3)])
    refused = await limiter.hit(key, str(uuid.uuid4()))
    assert not refused.allowed and refused.headers()["RateLimit-Remaining"] == "0"
    await asyncio.sleep(1.2)
    assert (await limiter.hit(key, str(uuid.uuid4()))).allowed


async def test_keys_are_limited_independently(redis: Redis) -> None:
    limiter = RedisRateLimiter(redis, limit=1, window_s=60)
    a, b = f"k-{uuid.uuid4()}", f"k-{uuid.uuid4()}"
    assert (await limiter.hit(a, "1")).allowed
    assert not (await limiter.hit(a, "2")).allowed
    assert (await limiter.hit(b, "1")).allowed


async def test_concurrency_slots_are_atomic_and_released(redis: Redis) -> None:
    limiter = RedisConcurrencyLimiter(redis, limit=5, slot_ttl_s=30)
    key = f"k-{uuid.uuid4()}"
    ids = [str(uuid.uuid4()) for _ in range(40)]
    got = await asyncio.gather(*(limiter.acquire(key, i) for i in ids))
    assert sum(got) == 5
    holders = [i for i, ok in zip(ids, got, strict=True) if ok]
    assert not await limiter.acquire(key, "late")
    await limiter.release(key, holders[0])
    assert await limiter.acquire(key, "late")


async def test_a_crashed_holder_frees_its_slot_after_the_ttl(redis: Redis) -> None:
    limiter = RedisConcurrencyLimiter(redis, limit=1, slot_ttl_s=0.5)
    key = f"k-{uuid.uuid4()}"
    assert await limiter.acquire(key, "crashed")  # never released
    assert not await limiter.acquire(key, "next")
    await asyncio.sleep(0.7)
    assert await limiter.acquire(key, "next")
