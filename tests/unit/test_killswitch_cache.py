"""The API's kill-switch cache: one Redis read per feature per TTL, never older than the
TTL counted from when the read was sent, and a miss while Redis is down raises."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from domain.killswitch import KEY_PREFIX
from projections.killswitch import CachedSwitches


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class CountingRedis:
    """A Redis of string values that counts GETs; ``during_get`` runs while one is out."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.gets = 0
        self.down = False
        self.clock: Clock | None = None
        self.get_takes_s = 0.0

    async def get(self, name: str) -> bytes | None:
        self.gets += 1
        if self.down:
            raise RedisConnectionError("connection refused")
        value = self.values.get(name)
        if self.clock is not None:
            self.clock.now += self.get_takes_s  # the answer arrives this much later
        await asyncio.sleep(0)
        return None if value is None else value.encode()


FEATURE = "goals.create"


async def test_one_read_per_ttl_and_a_toggle_is_seen_once_it_expires() -> None:
    redis, clock = CountingRedis(), Clock()
    switches = CachedSwitches(redis, 1.0, clock)  # type: ignore[arg-type]
    assert [await switches.is_engaged(FEATURE) for _ in range(50)] == [False] * 50
    assert redis.gets == 1
    redis.values[KEY_PREFIX + FEATURE] = "1"
    clock.now += 0.99
    assert not await switches.is_engaged(FEATURE)  # still the cached answer
    clock.now += 0.01
    assert await switches.is_engaged(FEATURE) and redis.gets == 2


async def test_the_ttl_counts_from_when_the_read_was_sent() -> None:
    redis, clock = CountingRedis(), Clock()
    redis.clock, redis.get_takes_s = clock, 0.4  # a slow answer: read at 100, arrives 100.4
    switches = CachedSwitches(redis, 1.0, clock)  # type: ignore[arg-type]
    assert not await switches.is_engaged(FEATURE)
    redis.values[KEY_PREFIX + FEATURE], redis.get_takes_s = "on", 0.0
    clock.now = 101.0  # 0.6 s after the answer arrived, 1 s after the read was sent
    assert await switches.is_engaged(FEATURE)


async def test_features_are_cached_apart_and_zero_ttl_reads_every_time() -> None:
    redis, clock = CountingRedis(), Clock()
    redis.values[KEY_PREFIX + "other"] = "yes"
    switches = CachedSwitches(redis, 0.0, clock)  # type: ignore[arg-type]
    assert not await switches.is_engaged(FEATURE)
    assert await switches.is_engaged("other")
    assert not await switches.is_engaged(FEATURE) and redis.gets == 3


async def test_a_miss_while_redis_is_down_raises_rather_than_allows() -> None:
    redis, clock = CountingRedis(), Clock()
    switches = CachedSwitches(redis, 1.0, clock)  # type: ignore[arg-type]
    redis.down = True
    with pytest.raises(RedisConnectionError):
        await switches.is_engaged(FEATURE)
