"""The gateway process: ``omnihub gateway run``, the gateway's projections and audit chain.

Five consumers of :mod:`streams.topology`, each a :class:`~streams.positions.PgTracked`
handler (exactly once, position in the same transaction):

- ``gateway-keys``: key lifecycle events into ``api_keys`` (what authentication reads);
- ``gateway-killswitch``: ``kill_switch_toggled`` into ``kill_switches``, mirrored to
  Redis after the commit;
- ``gateway-audit-chain``: security facts into the hash-chained ``audit_recorded`` stream;
- ``gateway-tiers``: subscriptions, wallet links and memberships into the tenant
  projection (what the tier checks and ``GET /api/v1/tenant`` read);
- ``gateway-devices``: trusted device events into ``trusted_devices`` (what device-signed
  requests are checked against).

None of them opens sealed fields: the read models keep the control plane's names and
reasons sealed, as the log holds them (the routes that show them open them, and they
read ``[erased]`` once the tenant's key is gone), and the chain hashes the ciphertext.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import asyncpg
from redis.asyncio import Redis

from apps.runtime import serve
from domain.events import Event
from omnihub.readiness import mark_ready
from omnihub.settings import Settings, get_settings
from projections import devices, killswitch
from projections.audit_chain import AuditChainer
from projections.audit_expiry import keep_expiring
from projections.keys import apply_key_event
from projections.migrate import apply_migrations, quote_ident
from projections.tenancy import ensure_tenant_rls
from projections.tenant_tiers import apply_tier_event
from streams.admin import ensure_declared_topics
from streams.codec import EventCodec
from streams.follower import LogConsumer
from streams.positions import After, PgTracked
from streams.producer import KafkaEventAppender
from streams.schema_registry import SchemaRegistry
from streams.topology import (
    GATEWAY_AUDIT_CHAIN,
    GATEWAY_DEVICES,
    GATEWAY_KEYS,
    GATEWAY_KILLSWITCH,
    GATEWAY_TIERS,
)


async def open_pool(settings: Settings) -> asyncpg.Pool:
    """A pool whose connections use the projections schema."""
    path = f"{quote_ident(settings.projections_schema)}, public"
    pool: asyncpg.Pool = await asyncpg.create_pool(
        settings.postgres_dsn, min_size=1, max_size=4, server_settings={"search_path": path}
    )
    return pool


def consumers(
    settings: Settings, pool: asyncpg.Pool, redis: Redis, appender: KafkaEventAppender
) -> list[LogConsumer]:
    """The five consumers, wired to real clients."""
    codec = EventCodec(SchemaRegistry.from_dir(settings.schemas_dir))
    # Fewer, larger batches: none of the gateway's read models is on a request's path
    # within the gather time (a new key, tier or kill switch is visible 50 ms later).
    settings = settings.model_copy(update={"consumer_gather_ms": settings.gateway_gather_ms})
    chainer = AuditChainer(appender)

    async def keys(conn: asyncpg.Connection, event: Event) -> After | None:
        await apply_key_event(conn, event)
        return None

    async def switches(conn: asyncpg.Connection, event: Event) -> After | None:
        state = await killswitch.apply_kill_switch(conn, event)
        return None if state is None else (lambda: killswitch.mirror(redis, state))

    async def audit(conn: asyncpg.Connection, event: Event) -> After | None:
        await chainer.handle(conn, event)
        return None

    async def trusted(conn: asyncpg.Connection, event: Event) -> After | None:
        await devices.apply_device_event(conn, event)
        return None

    async def tiers(conn: asyncpg.Connection, event: Event) -> After | None:
        await apply_tier_event(conn, event)
        return None

    wiring = (
        (GATEWAY_KEYS, keys),
        (GATEWAY_KILLSWITCH, switches),
        (GATEWAY_AUDIT_CHAIN, audit),
        (GATEWAY_TIERS, tiers),
        (GATEWAY_DEVICES, trusted),
    )
    return [
        LogConsumer(settings, sub, codec, [PgTracked(sub.consumer, pool, fn)]) for sub, fn in wiring
    ]


async def run_gateway(settings: Settings, stop: asyncio.Event) -> None:
    """Run every consumer until ``stop`` is set."""
    await ensure_declared_topics(settings)
    pool = await open_pool(settings)
    redis = Redis.from_url(settings.redis_url)
    codec = EventCodec(SchemaRegistry.from_dir(settings.schemas_dir))
    appender = KafkaEventAppender(settings, codec)
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn, schema=settings.projections_schema)
            await ensure_tenant_rls(conn, settings.projections_schema)
        await killswitch.sync_redis(redis, pool)
        mark_ready()
        jobs = [c.run(stop) for c in consumers(settings, pool, redis, appender)]
        if settings.audit_expiry_every_s > 0:
            jobs.append(keep_expiring(pool, appender, settings.audit_expiry_every_s, stop))
        await asyncio.gather(*jobs)
    finally:
        await appender.stop()
        await redis.aclose()
        await pool.close()


def register(sub: Any) -> None:
    """``omnihub gateway run``."""
    group = sub.add_parser(
        "gateway", help="the gateway's keys, kill switches, tiers and audit chain"
    )
    cmds = group.add_subparsers(dest="action", required=True)
    cmds.add_parser("run", help="project keys and switches, chain audit facts").set_defaults(
        handler=_run
    )


def _run(_: argparse.Namespace) -> int:
    settings = get_settings()
    return serve(lambda stop: run_gateway(settings, stop), process="gateway")
