"""The plan-cache process: ``omnihub plan-cache run``, the log folded into pgvector.

One consumer (the ``plan-cache`` subscription) whose handler embeds and stores plans,
invalidations and shares (:mod:`projections.plan_cache.projector`). The operators'
``plan-cache`` commands (rebuild, purge, invalidate, share) are in
:mod:`apps.commands.plan_cache`.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from apps.commands import plan_cache as ops
from apps.runtime import serve
from omnihub.readiness import mark_ready
from omnihub.settings import Settings, get_settings
from projections.keyring import privacy_for
from projections.plan_cache.adapter import embedder_for
from projections.plan_cache.projector import PlanCacheFolder
from projections.plan_cache.store import PgPlanCacheStore, migrate
from streams.codec import EventCodec
from streams.follower import LogConsumer
from streams.schema_registry import SchemaRegistry
from streams.topology import PLAN_CACHE


@asynccontextmanager
async def plan_cache_consumer(settings: Settings) -> AsyncIterator[LogConsumer]:
    """The plan cache's consumer over a migrated store and the embedding model."""
    pool = await asyncpg.create_pool(settings.postgres_dsn, min_size=1, max_size=4)
    try:
        await migrate(pool, settings.projections_schema)
        store = PgPlanCacheStore(pool, schema=settings.projections_schema)
        embedder = embedder_for(settings)
        folder = PlanCacheFolder(store, embedder, ttl_s=settings.plan_cache_ttl_s)
        codec = EventCodec(SchemaRegistry.from_dir(settings.schemas_dir))
        privacy = privacy_for(settings, codec.registry)
        try:
            yield LogConsumer(settings, PLAN_CACHE, codec, [folder], privacy=privacy)
        finally:
            await privacy.close()
    finally:
        await pool.close()


async def run_plan_cache(settings: Settings, stop: asyncio.Event) -> None:
    """Follow the log into the cache until ``stop`` is set."""
    async with plan_cache_consumer(settings) as consumer:
        mark_ready()
        await consumer.run(stop)


def register(sub: Any) -> None:
    """``omnihub plan-cache run`` and the operators' plan-cache commands."""
    group = sub.add_parser("plan-cache", help="the semantic plan cache projection")
    cmds = group.add_subparsers(dest="plan_cache_command", required=True)
    cmds.add_parser("run", help="follow the log into the cache").set_defaults(handler=_run)
    ops.register_ops(cmds, plan_cache_consumer)


def _run(_: argparse.Namespace) -> int:
    settings = get_settings()
    return serve(lambda stop: run_plan_cache(settings, stop), process="plan-cache")
