"""The gateway's rate and concurrency limits (one script) against the real Redis of the
test stack."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from api.security.limits import Admission, LimiterUnavailable, Limits, RedisLimiter
from infra.launch import free_port
from omnihub.settings import get_settings


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(get_settings().redis_url)
    yield client
    await client.aclose()


def limiter(redis: Redis, rate: int = 1000, busy: int = 1000, **kw: float) -> RedisLimiter:
    return RedisLimiter(redis, rate_limit=rate, concurrency_limit=busy, **kw)


def rid() -> str:
    return str(uuid.uuid4())


async def test_a_concurrent_burst_from_many_clients_never_exceeds_the_rate(redis: Redis) -> None:
    key = f"k-{uuid.uuid4()}"
    # Several independent connections, as several API processes would have.
    clients = [Redis.from_url(get_settings().redis_url) for _ in range(4)]
    limiters = [limiter(c, rate=60, window_s=60) for c in clients]
    try:
        answers = await asyncio.gather(
            *(limiters[i % 4].admit(key, rid(), scope_granted=True) for i in range(200))
        )
    finally:
        for c in clients:
            await c.aclose()
    decisions = [a.rate for a in answers]
    allowed = [d for d in decisions if d.allowed]
    assert len(allowed) == 60
    assert sorted(d.remaining for d in allowed) == list(range(60))
    refused = [d for d in decisions if not d.allowed]
    assert all(d.remaining == 0 and 0 < d.reset_s <= 60 for d in refused)
    assert refused[0].headers()["Retry-After"] == str(refused[0].reset_s)
    assert await redis.zcard(RedisLimiter.keys_of(key)[0]) == 60
    assert [a.slot for a in answers] == [a.rate.allowed for a in answers]


async def test_the_window_slides(redis: Redis) -> None:
    limits = limiter(redis, rate=3, window_s=1.0)
    key = f"k-{uuid.uuid4()}"
    assert all([(await limits.admit(key, rid(), True)).rate.allowed for _ in range(3)])
    refused = await limits.admit(key, rid(), True)
    assert not refused.rate.allowed and refused.rate.headers()["RateLimit-Remaining"] == "0"
    await asyncio.sleep(1.2)
    assert (await limits.admit(key, rid(), True)).rate.allowed


async def test_keys_are_limited_independently(redis: Redis) -> None:
    limits = limiter(redis, rate=1, busy=1)
    a, b = f"k-{uuid.uuid4()}", f"k-{uuid.uuid4()}"
    assert (await limits.admit(a, "1", True)).slot
    assert not (await limits.admit(a, "2", True)).rate.allowed
    assert (await limits.admit(b, "1", True)).slot


async def test_a_burst_from_many_tasks_never_overshoots_the_slots(redis: Redis) -> None:
    key = f"k-{uuid.uuid4()}"
    clients = [Redis.from_url(get_settings().redis_url) for _ in range(4)]
    limiters = [limiter(c, busy=5, slot_ttl_s=30) for c in clients]
    ids = [rid() for _ in range(80)]
    try:
        answers = await asyncio.gather(
            *(limiters[i % 4].admit(key, x, True) for i, x in enumerate(ids))
        )
    finally:
        for c in clients:
            await c.aclose()
    assert all(a.rate.allowed for a in answers)
    holders = [x for x, a in zip(ids, answers, strict=True) if a.slot]
    assert len(holders) == 5
    assert await redis.zcard(RedisLimiter.keys_of(key)[1]) == 5
    limits = limiter(redis, busy=5, slot_ttl_s=30)
    assert not (await limits.admit(key, "late", True)).slot
    await limits.release(key, holders[0])
    assert (await limits.admit(key, "late", True)).slot


async def test_a_missing_scope_costs_quota_but_takes_no_slot(redis: Redis) -> None:
    limits = limiter(redis, rate=3, busy=1)
    key = f"k-{uuid.uuid4()}"
    probes = [await limits.admit(key, rid(), scope_granted=False) for _ in range(2)]
    assert [p.rate.allowed for p in probes] == [True, True] and not any(p.slot for p in probes)
    assert [p.rate.remaining for p in probes] == [2, 1]
    assert await redis.zcard(RedisLimiter.keys_of(key)[1]) == 0
    assert (await limits.admit(key, rid(), scope_granted=True)).slot  # the slot is still free
    over = await limits.admit(key, rid(), scope_granted=True)
    assert not over.rate.allowed and not over.slot


async def test_a_refused_rate_takes_no_slot(redis: Redis) -> None:
    limits = limiter(redis, rate=1, busy=5)
    key = f"k-{uuid.uuid4()}"
    assert (await limits.admit(key, "first", True)).slot
    refused = await limits.admit(key, "second", True)
    assert not refused.rate.allowed and not refused.slot
    assert await redis.zrange(RedisLimiter.keys_of(key)[1], 0, -1) == [b"first"]


async def test_a_crashed_holder_frees_its_slot_after_the_ttl(redis: Redis) -> None:
    limits = limiter(redis, busy=1, slot_ttl_s=0.5)
    key = f"k-{uuid.uuid4()}"
    assert (await limits.admit(key, "crashed", True)).slot  # never released
    assert not (await limits.admit(key, "next", True)).slot
    await asyncio.sleep(0.7)
    assert (await limits.admit(key, "next", True)).slot


async def test_redis_not_answering_fails_closed() -> None:
    nobody = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    try:
        with pytest.raises(LimiterUnavailable):
            await limiter(nobody).admit("k", rid(), True)
        await limiter(nobody).release("k", "x")  # never raises: the slot expires anyway
    finally:
        await nobody.aclose()


async def test_a_tenant_limit_holds_across_its_keys_and_names_itself(redis: Redis) -> None:
    limits = limiter(redis)
    tenant, other = f"t-{uuid.uuid4()}", f"t-{uuid.uuid4()}"
    tier = Limits(rate_per_key=10, in_flight_per_key=10, rate_per_tenant=3, in_flight_per_tenant=2)

    async def admit(key: str, t: str = tenant, rid_: str | None = None) -> Admission:
        return await limits.admit(key, rid_ or rid(), True, tenant_id=t, limits=tier)

    answers = [await admit(k) for k in ("a", "b", "a")]
    assert [a.slot for a in answers] == [True, True, False]  # two in flight per tenant
    assert answers[2].refused_by == "in_flight_per_tenant" and answers[2].rate.allowed
    refused = await admit("c")
    assert not refused.rate.allowed and refused.refused_by == "requests_per_minute_per_tenant"
    assert refused.rate.limit == 3 and refused.rate.remaining == 0
    assert (await admit("a", other)).slot  # another tenant is untouched


async def test_a_key_limit_refuses_before_the_tenant_and_release_frees_both(redis: Redis) -> None:
    limits = limiter(redis)
    tenant = f"t-{uuid.uuid4()}"
    tier = Limits(rate_per_key=2, in_flight_per_key=1, rate_per_tenant=100, in_flight_per_tenant=5)
    first = await limits.admit("k", "r1", True, tenant_id=tenant, limits=tier)
    busy = await limits.admit("k", "r2", True, tenant_id=tenant, limits=tier)
    assert first.slot and not busy.slot and busy.refused_by == "in_flight_per_key"
    over = await limits.admit("k", "r3", True, tenant_id=tenant, limits=tier)
    assert not over.rate.allowed and over.refused_by == "requests_per_minute_per_key"
    _, key_slots, _, tenant_slots = RedisLimiter.keys_of("k", tenant)
    assert await redis.zcard(key_slots) == 1 and await redis.zcard(tenant_slots) == 1
    await limits.release("k", "r1", tenant)
    assert await redis.zcard(key_slots) == 0 and await redis.zcard(tenant_slots) == 0
