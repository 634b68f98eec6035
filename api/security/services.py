"""The gateway's clients, built once per API process (see ``apps.api.build_state``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
from redis.asyncio import Redis

from api.security.audit import AuditSink
from api.security.devices import DeviceAuthenticator, PostgresDeviceLookup
from api.security.last_used import LastUsed
from api.security.limits import RedisLimiter
from api.security.principal import Authenticator
from api.security.quota import GoalQuota
from api.security.sessions import SessionStore
from api.security.tenancy import owner_connection
from api.security.tiers import TierReader, Tiers, postgres_facts
from omnihub.lazy import Lazy
from omnihub.settings import Settings
from projections import keys
from projections.keys import StoredKey
from streams.producer import EventAppender


class PostgresKeyLookup:
    """:class:`~api.security.principal.KeyLookup` over the ``api_keys`` projection."""

    def __init__(self, pool: Lazy[asyncpg.Pool], schema: str) -> None:
        self._pool = pool
        self._schema = schema

    async def by_prefix(self, prefix: str) -> StoredKey | None:
        async with owner_connection(await self._pool.get(), self._schema) as conn:
            return await keys.by_prefix(conn, prefix)


@dataclass
class SecurityServices:
    """Authentication, limits and audit, as routes' dependencies use them."""

    authenticator: Authenticator
    limits: RedisLimiter
    audit: AuditSink
    sessions: SessionStore | None = None  # dashboard sign-in (api/security/sessions.py)
    devices: DeviceAuthenticator | None = None  # device-signed requests (api/security/devices.py)
    tiers: Tiers | None = None  # each tenant's tier (api/security/tiers.py)
    quota: GoalQuota | None = None  # goals per month (api/security/quota.py)
    # When set, replace every tier's rate / in-flight limits (load tests and benchmarks).
    rate_override: int | None = None
    busy_override: int | None = None
    last_used: LastUsed | None = None  # for `omnihub keys list` (api/security/last_used.py)


def build_security(
    settings: Settings,
    redis: Redis,
    pool: Lazy[asyncpg.Pool],
    appender: Callable[[], EventAppender],
) -> SecurityServices:
    """The gateway's services over the API's Redis, Postgres pool and (current) appender."""
    authenticator = Authenticator(
        PostgresKeyLookup(pool, settings.projections_schema),
        settings.secret_key,
        settings.auth_cache_ttl_s,
    )
    return SecurityServices(
        authenticator=authenticator,
        limits=RedisLimiter(
            redis,
            rate_limit=settings.rate_limit_per_minute or 60,  # unused: each request's tier
            concurrency_limit=settings.concurrency_limit or 5,
            window_s=60.0,
            slot_ttl_s=settings.concurrency_slot_ttl_s,
        ),
        audit=AuditSink(appender),
        sessions=SessionStore(redis, authenticator, settings.session_ttl_s, settings.topic_prefix),
        devices=DeviceAuthenticator(
            PostgresDeviceLookup(pool, settings.projections_schema),
            redis,
            window_s=settings.device_signature_window_s,
            cache_ttl_s=settings.auth_cache_ttl_s,
            prefix=f"omnihub:{settings.topic_prefix}",
        ),
        tiers=TierReader(
            postgres_facts(pool, settings.projections_schema),
            settings.tier_cache_ttl_s,
            settings.default_tier,
        ),
        quota=GoalQuota(redis, namespace=settings.topic_prefix),
        rate_override=settings.rate_limit_per_minute,
        busy_override=settings.concurrency_limit,
        last_used=LastUsed(redis, settings.topic_prefix),
    )
