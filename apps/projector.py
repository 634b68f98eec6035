"""The projector process: ``omnihub projector run``, the log folded into the read models.

One consumer (the ``projector`` subscription) with two handlers, the Postgres read
models and the Redis live views (:mod:`projections.sinks`). Migrations are applied and
topics declared first. Several projectors share the partitions of one group;
``--instance-id`` (static membership) lets a restarted one take its partitions back
without a rebalance.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from redis.asyncio import Redis

from apps.runtime import serve
from omnihub.readiness import mark_ready
from omnihub.settings import Settings, get_settings
from projections.approval_gauge import keep_approval_gauges
from projections.fold import FoldShare
from projections.keyring import privacy_for
from projections.migrate import apply_migrations
from projections.pg_store import PostgresProjection
from projections.redis_store import RedisProjection
from projections.sinks import PostgresSink, RedisSink
from streams.admin import ensure_declared_topics
from streams.codec import EventCodec
from streams.consumer import Handler
from streams.follower import LogConsumer
from streams.schema_registry import SchemaRegistry
from streams.topology import PROJECTOR

log = logging.getLogger(__name__)


@asynccontextmanager
async def projector(
    settings: Settings, instance_id: str | None = None
) -> AsyncIterator[LogConsumer]:
    """Migrate, declare topics, open Postgres and Redis; the projector's consumer."""
    await ensure_declared_topics(settings)
    pool = await asyncpg.create_pool(settings.postgres_dsn, min_size=1, max_size=8)
    redis = Redis.from_url(settings.redis_url, socket_timeout=10)
    try:
        await apply_migrations(pool, schema=settings.projections_schema)
        codec = EventCodec(SchemaRegistry.from_dir(settings.schemas_dir))
        share = FoldShare()  # Postgres folds each batch, Redis writes the same fold
        handlers: list[Handler] = [
            PostgresSink(pool, PostgresProjection(schema=settings.projections_schema, share=share)),
            RedisSink(RedisProjection.of(redis, settings, share=share)),
        ]
        gauges = asyncio.create_task(keep_approval_gauges(pool, settings.projections_schema))
        privacy = privacy_for(settings, codec.registry)
        try:
            yield LogConsumer(
                settings, PROJECTOR, codec, handlers, instance_id=instance_id, privacy=privacy
            )
        finally:
            gauges.cancel()
            await privacy.close()
    finally:
        await redis.aclose()
        await pool.close()


async def run_projector(
    settings: Settings, stop: asyncio.Event, instance_id: str | None = None
) -> None:
    """Fold the log into the read models until ``stop`` is set."""
    async with projector(settings, instance_id) as consumer:
        mark_ready()
        log.warning("projector running (instance %s)", instance_id or "dynamic")
        await consumer.run(stop)


def register(sub: Any) -> None:
    """``omnihub projector run``."""
    group = sub.add_parser("projector", help="the stream processor that feeds read models")
    cmds = group.add_subparsers(dest="action", required=True)
    run = cmds.add_parser("run", help="fold the log into Postgres and Redis")
    run.add_argument("--instance-id", help="static group membership id (fast restarts)")
    run.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    settings = get_settings()
    return serve(
        lambda stop: run_projector(settings, stop, args.instance_id),
        level=logging.WARNING,
        process="projector",
    )
