"""Kill switches: folded into Postgres (the record) and mirrored into Redis (what the API
and the sagas read within milliseconds).

Redis keys and values are :mod:`domain.killswitch`'s: ``omnihub:killswitch:<feature>``
holds ``1`` while the feature is switched off for every tenant; the key is deleted when
it is back on. Redis is a view: :func:`sync_redis` rewrites it from Postgres at processor start.
The API reads it through :class:`CachedSwitches`, one GET per feature per ``ttl_s``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from redis.asyncio import Redis

from domain.events import Event, KillSwitchToggled
from domain.killswitch import engaged, redis_key
from omnihub.single_flight import SingleFlight


@dataclass(frozen=True)
class SwitchState:
    """A feature's current switch, as the admin API lists it."""

    feature: str
    enabled: bool
    reason: str
    changed_by: str
    changed_at: datetime


async def apply_kill_switch(conn: asyncpg.Connection, event: Event) -> SwitchState | None:
    """Fold one ``kill_switch_toggled``; the state to mirror, or None if it was stale."""
    if not isinstance(event, KillSwitchToggled):
        return None
    env = event.envelope
    row = await conn.fetchrow(
        "INSERT INTO kill_switches (feature, enabled, reason, changed_by, changed_by_tenant,"
        " changed_at, event_id) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        " ON CONFLICT (feature) DO UPDATE SET enabled = EXCLUDED.enabled,"
        " reason = EXCLUDED.reason, changed_by = EXCLUDED.changed_by,"
        " changed_by_tenant = EXCLUDED.changed_by_tenant, changed_at = EXCLUDED.changed_at,"
        " event_id = EXCLUDED.event_id WHERE kill_switches.changed_at <= EXCLUDED.changed_at"
        " RETURNING feature",
        event.feature,
        event.enabled,
        event.reason,
        env.actor,
        env.tenant_id,
        env.occurred_at,
        env.event_id,
    )
    if row is None:
        return None
    return SwitchState(event.feature, event.enabled, event.reason, env.actor, env.occurred_at)


async def mirror(redis: Redis, state: SwitchState) -> None:
    """Write one switch into Redis."""
    if state.enabled:
        await redis.delete(redis_key(state.feature))
    else:
        await redis.set(redis_key(state.feature), "1")


async def list_switches(conn: asyncpg.Connection | asyncpg.Pool) -> list[SwitchState]:
    """Every switch ever toggled, by feature."""
    rows = await conn.fetch(
        "SELECT feature, enabled, reason, changed_by, changed_at FROM kill_switches"
        " ORDER BY feature"
    )
    return [SwitchState(**dict(r)) for r in rows]


async def sync_redis(redis: Redis, pool: asyncpg.Pool) -> int:
    """Rewrite every switch's Redis key from Postgres; how many were written."""
    switches = await list_switches(pool)
    for state in switches:
        await mirror(redis, state)
    return len(switches)


async def is_engaged(redis: Redis, feature: str) -> bool:
    """Whether ``feature`` is switched off for every tenant (raises if Redis is down)."""
    return engaged(await redis.get(redis_key(feature)))


class CachedSwitches:
    """:func:`is_engaged` with an in-process cache: a hot route asks Redis once per
    feature per ``ttl_s`` instead of on every request.

    A toggle is therefore honoured within ``ttl_s``: an answer is cached for ``ttl_s``
    from when its GET was sent, so a value read before the toggle reached Redis is gone
    ``ttl_s`` after it did. ``ttl_s = 0`` reads Redis every time. A miss while Redis is
    down raises, as :func:`is_engaged` does.
    """

    def __init__(
        self, redis: Redis, ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._redis = redis
        self.ttl_s = ttl_s
        self._clock = clock
        self._cached: dict[str, tuple[float, bool]] = {}  # feature -> (expires, engaged)
        self._flights: SingleFlight[str, bool] = SingleFlight()

    async def is_engaged(self, feature: str) -> bool:
        """Whether ``feature`` is switched off for every tenant, at most ``ttl_s`` old.
        Concurrent misses share one GET (:mod:`omnihub.single_flight`)."""
        asked_at = self._clock()  # before the GET: see the class docstring
        hit = self._cached.get(feature)
        if hit is not None and asked_at < hit[0]:
            return hit[1]
        return await self._flights.load(
            feature, asked_at, self.ttl_s, lambda: self._read(feature, asked_at)
        )

    async def _read(self, feature: str, asked_at: float) -> bool:
        engaged = await is_engaged(self._redis, feature)
        self._cached[feature] = (asked_at + self.ttl_s, engaged)
        return engaged
