"""Concurrent cache misses share one load, never one older than the TTL, and a caller
cancelled while waiting does not cancel the load for the others."""

from __future__ import annotations

import asyncio

from api.security.tiers import TierReader
from domain.entitlements import TenantTiers
from omnihub.single_flight import SingleFlight


class Slow:
    def __init__(self) -> None:
        self.calls = 0
        self.gate = asyncio.Event()

    async def __call__(self) -> int:
        self.calls += 1
        mine = self.calls
        await self.gate.wait()
        return mine


async def test_misses_within_the_ttl_share_one_load() -> None:
    flights: SingleFlight[str, int] = SingleFlight()
    load = Slow()
    waiting = [asyncio.create_task(flights.load("k", 10.0 + i / 10, 1.0, load)) for i in range(5)]
    await asyncio.sleep(0)
    load.gate.set()
    assert await asyncio.gather(*waiting) == [1] * 5
    assert load.calls == 1
    assert await flights.load("k", 20.0, 1.0, load) == 2  # landed: the next miss loads


async def test_a_load_older_than_the_ttl_is_not_joined_and_zero_ttl_shares_nothing() -> None:
    flights: SingleFlight[str, int] = SingleFlight()
    load = Slow()
    first = asyncio.create_task(flights.load("k", 10.0, 1.0, load))
    late = asyncio.create_task(flights.load("k", 11.0, 1.0, load))  # 1 s later: too old
    other = asyncio.create_task(flights.load("j", 11.0, 0.0, load))
    again = asyncio.create_task(flights.load("j", 11.0, 0.0, load))
    await asyncio.sleep(0)
    load.gate.set()
    await asyncio.gather(first, late, other, again)
    assert load.calls == 4


async def test_a_cancelled_waiter_leaves_the_load_to_the_others_and_errors_reach_all() -> None:
    flights: SingleFlight[str, int] = SingleFlight()
    load = Slow()
    leader = asyncio.create_task(flights.load("k", 1.0, 5.0, load))
    follower = asyncio.create_task(flights.load("k", 1.5, 5.0, load))
    await asyncio.sleep(0)
    leader.cancel()
    load.gate.set()
    assert await follower == 1

    async def down() -> int:
        await asyncio.sleep(0)
        raise OSError("down")

    both = [asyncio.create_task(flights.load("x", 1.0, 5.0, down)) for _ in range(2)]
    for outcome in await asyncio.gather(*both, return_exceptions=True):
        assert isinstance(outcome, OSError)


async def test_forget_makes_the_next_miss_load_afresh() -> None:
    flights: SingleFlight[str, int] = SingleFlight()
    load = Slow()
    before = asyncio.create_task(flights.load("k", 1.0, 5.0, load))
    await asyncio.sleep(0)
    flights.forget("k")
    after = asyncio.create_task(flights.load("k", 1.1, 5.0, load))
    await asyncio.sleep(0)
    load.gate.set()
    assert sorted(await asyncio.gather(before, after)) == [1, 2]


async def test_tier_reader_reads_once_for_concurrent_misses() -> None:
    reads = 0
    gate = asyncio.Event()

    async def load(tenant: str) -> TenantTiers:
        nonlocal reads
        reads += 1
        await gate.wait()
        return TenantTiers(tenant)

    reader = TierReader(load, ttl_s=1.0, clock=lambda: 5.0)
    waiting = [asyncio.create_task(reader.facts("acme")) for _ in range(32)]
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(*waiting)
    assert reads == 1
    await reader.facts("acme")  # cached now
    assert reads == 1
