"""Kill switches as the saga reads them (keys and features: :mod:`domain.killswitch`).

The gateway owns turning switches on and off (as events, projected into Redis); the
saga only asks.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from redis.asyncio import Redis

from domain.killswitch import engaged, redis_key


class KillSwitches(Protocol):
    """Answers whether an emergency kill switch is engaged."""

    async def is_engaged(self, feature: str) -> bool:
        """True if ``feature`` is switched off for every tenant.

        Raises if the switches cannot be read: a run must not proceed unchecked.
        """
        ...


class RedisKillSwitches:
    """:class:`KillSwitches` reading the gateway's Redis keys."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def is_engaged(self, feature: str) -> bool:
        return engaged(await self._redis.get(redis_key(feature)))


class StaticKillSwitches:
    """:class:`KillSwitches` from a fixed set of engaged features."""

    def __init__(self, engaged_features: Iterable[str] = ()) -> None:
        self._engaged = frozenset(engaged_features)

    async def is_engaged(self, feature: str) -> bool:
        return feature in self._engaged
