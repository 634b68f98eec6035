"""The gateway's stream processor: ``python -m streams.security_processor``.

Three exactly-once consumers (see :mod:`streams.tracked_consumer`) in one process:

- ``gateway-keys``: key lifecycle events -> ``api_keys`` (what authentication reads);
- ``gateway-killswitch``: ``kill_switch_toggled`` -> ``kill_switches`` and Redis;
- ``gateway-audit-chain``: security facts -> the hash-chained ``audit_recorded`` stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable

import asyncpg
from redis.asyncio import Redis

from domain.events import Event
from omnihub.readiness import mark_ready
from omnihub.settings import Settings, get_settings
from projections import killswitch
from projections.keys import KEY_EVENTS, apply_key_event
from projections.migrate import apply_migrations, quote_ident
from projections.tenancy import ensure_tenant_rls
from streams.admin import ensure_declared_topics
from streams.audit_chain import SOURCE_TYPES, AuditChainer
from streams.codec import EventCodec
from streams.producer import KafkaEventAppender
from streams.schema_registry import SchemaRegistry
from streams.topics import Topic, topic_name
from streams.tracked_consumer import TrackedConsumer

log = logging.getLogger(__name__)
After = Callable[[], Awaitable[None]] | None


async def open_pool(settings: Settings) -> asyncpg.Pool:
    """A pool whose connections use the projections schema."""
    path = f"{quote_ident(settings.projections_schema)}, public"
    pool: asyncpg.Pool = await asyncpg.create_pool(
        settings.postgres_dsn, min_size=1, max_size=4, server_settings={"search_path": path}
    )
    return pool


def consumers(
    settings: Settings, pool: asyncpg.Pool, redis: Redis, appender: KafkaEventAppender
) -> list[TrackedConsumer]:
    """The three consumers, wired to ``settings``' topics."""
    codec = EventCodec(SchemaRegistry.from_dir(settings.schemas_dir))
    control, runs = topic_name(settings, Topic.CONTROL), topic_name(settings, Topic.RUNS)
    chainer = AuditChainer(appender)

    async def keys(conn: asyncpg.Connection, event: Event) -> After:
        await apply_key_event(conn, event)
        return None

    async def switches(conn: asyncpg.Connection, event: Event) -> After:
        state = await killswitch.apply_kill_switch(conn, event)
        return None if state is None else (lambda: killswitch.mirror(redis, state))

    async def audit(conn: asyncpg.Connection, event: Event) -> After:
        await chainer.handle(conn, event)
        return None

    common = {
        "bootstrap": settings.kafka_bootstrap,
        "pool": pool,
        "codec": codec,
        "deadletter_topic": topic_name(settings, Topic.DEADLETTER),
    }
    return [
        TrackedConsumer("gateway-keys", topics=[control], types=KEY_EVENTS, handler=keys, **common),
        TrackedConsumer(
            "gateway-killswitch",
            topics=[control],
            types={"kill_switch_toggled"},
            handler=switches,
            **common,
        ),
        TrackedConsumer(
            "gateway-audit-chain",
            topics=[control, runs],
            types=SOURCE_TYPES,
            handler=audit,
            **common,
        ),
    ]


async def run(settings: Settings, stop: asyncio.Event) -> None:
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
        await asyncio.gather(*(c.run(stop) for c in consumers(settings, pool, redis, appender)))
    finally:
        await appender.stop()
        await redis.aclose()
        await pool.close()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    stop = asyncio.Event()

    async def go() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await run(get_settings(), stop)

    asyncio.run(go())


if __name__ == "__main__":
    main()
