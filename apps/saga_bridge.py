"""The saga bridge process: ``omnihub saga-bridge run``, Kafka to Temporal.

One consumer (the ``saga-bridge`` subscription) whose handler starts and signals
``AgentWorkflow`` runs (:mod:`sagas.bridge`). New runs get the tenant's tier from the
tenant projection (Postgres, :class:`projections.tenant_tiers.PgTierLookup`).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import asyncpg
from temporalio.client import Client

from apps import temporal_client
from apps.runtime import serve
from domain.risk_policy import policies_from
from omnihub.readiness import mark_ready
from omnihub.settings import Settings, get_settings
from projections.keyring import privacy_for
from projections.migrate import apply_migrations, quote_ident
from projections.tenant_tiers import PgTierLookup
from sagas.bridge import SagaBridge, TemporalRuns, policy_from
from streams.admin import ensure_declared_topics
from streams.codec import EventCodec
from streams.follower import LogConsumer
from streams.schema_registry import SchemaRegistry
from streams.topology import SAGA_BRIDGE


async def run_bridge(
    settings: Settings,
    stop: asyncio.Event,
    *,
    group_id: str | None = None,
    start_at_latest: bool = False,
    ready: asyncio.Event | None = None,
    client: Client | None = None,
) -> SagaBridge:
    """Bridge until ``stop`` is set. A new group starts at the oldest record unless told."""
    await ensure_declared_topics(settings)
    codec = EventCodec(SchemaRegistry.from_dir(settings.schemas_dir))
    own_client = client is None
    client = client or await temporal_client.connect(settings)
    pool = await asyncpg.create_pool(
        settings.postgres_dsn,
        min_size=1,
        max_size=2,
        server_settings={"search_path": f"{quote_ident(settings.projections_schema)}, public"},
    )
    privacy = privacy_for(settings, codec.registry)
    try:
        async with pool.acquire() as conn:  # the tenant projection's tables, as the gateway
            await apply_migrations(conn, schema=settings.projections_schema)
        bridge = SagaBridge(
            TemporalRuns(client, settings.temporal_task_queue),
            policy_from(settings),
            policies_from(settings.tenant_policies),
            PgTierLookup(pool, settings.default_tier, settings.tier_cache_ttl_s),
        )
        consumer = LogConsumer(
            settings,
            SAGA_BRIDGE,
            codec,
            [bridge],
            privacy=privacy,
            group_id=group_id,
            start_at_latest=start_at_latest,
        )
        mark_ready()
        await consumer.run(stop, ready)
    finally:
        await privacy.close()
        await pool.close()
        if own_client:
            await temporal_client.release(client)
    return bridge


def register(sub: Any) -> None:
    """``omnihub saga-bridge run``."""
    bridge = sub.add_parser("saga-bridge", help="start and signal runs from Kafka events")
    cmds = bridge.add_subparsers(dest="action", required=True)
    run = cmds.add_parser("run", help="consume run events and drive the workflows")
    run.add_argument("--group", help="consumer group (default <topic_prefix>-saga-bridge)")
    run.add_argument(
        "--from-latest", action="store_true", help="a new group starts at the end, not the start"
    )
    run.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    settings = get_settings()
    return serve(
        lambda stop: run_bridge(
            settings, stop, group_id=args.group, start_at_latest=args.from_latest
        ),
        process="saga-bridge",
    )
