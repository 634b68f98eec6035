"""Open streams per key, counted across processes by leases in the test stack's Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from api.stream_leases import StreamLeases
from omnihub.settings import get_settings


@pytest.fixture
async def clients() -> AsyncIterator[list[Redis]]:
    # Independent connections, as two API processes would have.
    made = [Redis.from_url(get_settings().redis_url) for _ in range(2)]
    yield made
    for client in made:
        await client.aclose()


async def test_the_limit_holds_across_processes_even_in_a_burst(clients: list[Redis]) -> None:
    key = f"k-{uuid.uuid4()}"
    one, two = (StreamLeases(c, limit=3) for c in clients)
    taken = await asyncio.gather(*(side.take(key) for side in (one, two) * 10))
    held = [lease for lease in taken if lease is not None]
    assert len(held) == 3
    await held[0].release()
    assert await two.take(key) is not None  # the released slot is free again
    assert await one.take(key) is None


async def test_a_lease_nobody_renews_lapses_and_cannot_be_renewed(clients: list[Redis]) -> None:
    key = f"k-{uuid.uuid4()}"
    leases = StreamLeases(clients[0], limit=1, lease_s=0.3)
    crashed = await leases.take(key)  # its process dies: nothing renews or releases it
    assert crashed is not None and await leases.take(key) is None
    kept = None
    for _ in range(20):
        await asyncio.sleep(0.1)
        if (kept := await leases.take(key)) is not None:
            break
    assert kept is not None, "a dead stream's lease never lapsed"
    assert not await crashed.renew()  # its slot went to another stream
    assert await kept.renew()
    assert 0 < await clients[0].pttl(StreamLeases.name(key)) <= 300
