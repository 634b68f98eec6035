"""``omnihub plan-cache``: run or rebuild the cache projection, invalidate, share, purge."""

from __future__ import annotations

import argparse
import asyncio
import signal
import uuid
from datetime import UTC, datetime
from typing import Any

from omnihub.readiness import mark_ready
from omnihub.settings import Settings, get_settings


def register(sub: Any) -> None:
    """Add the ``plan-cache`` command group."""
    group = sub.add_parser("plan-cache", help="the semantic plan cache projection")
    cmds = group.add_subparsers(dest="plan_cache_command", required=True)
    cmds.add_parser("run", help="follow the log into the cache").set_defaults(handler=_run)
    cmds.add_parser("rebuild", help="empty the cache and replay the whole log").set_defaults(
        handler=_rebuild
    )
    cmds.add_parser("purge", help="delete expired entries").set_defaults(handler=_purge)
    inv = cmds.add_parser("invalidate", help="append plan_cache_invalidated")
    inv.add_argument("--tenant", required=True)
    inv.add_argument("--template", help="only this template (default: the whole tenant)")
    inv.add_argument("--reason", default="")
    inv.set_defaults(handler=_invalidate)
    share = cmds.add_parser("share", help="append plan_template_shared (replaces the list)")
    share.add_argument("--tenant", required=True)
    share.add_argument("--template", required=True)
    share.add_argument("--with", dest="grantees", nargs="*", default=[], help="tenants or *")
    share.set_defaults(handler=_share)
    cmds.add_parser(
        "export-onnx", help="export the embedding model to ONNX (else done on first use)"
    ).set_defaults(handler=_export_onnx)


def _export_onnx(_: argparse.Namespace) -> int:
    from projections.plan_cache.onnx_embedder import ensure_onnx

    print(ensure_onnx(get_settings().plan_cache_model_path))
    return 0


async def _projector(settings: Settings) -> tuple[Any, Any]:
    import asyncpg

    from projections.plan_cache.adapter import embedder_for
    from projections.plan_cache.projector import PlanCacheProjector
    from projections.plan_cache.store import PgPlanCacheStore, migrate
    from streams.codec import EventCodec
    from streams.schema_registry import SchemaRegistry

    pool = await asyncpg.create_pool(settings.postgres_dsn, min_size=1, max_size=4)
    await migrate(pool, settings.projections_schema)
    store = PgPlanCacheStore(pool, schema=settings.projections_schema)
    codec = EventCodec(SchemaRegistry.from_dir(settings.schemas_dir))
    embedder = embedder_for(settings)
    return PlanCacheProjector(settings, store, embedder, codec), pool


def _run(_: argparse.Namespace) -> int:
    async def main() -> None:
        projector, pool = await _projector(get_settings())
        mark_ready()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await projector.run(stop)
        finally:
            await pool.close()

    asyncio.run(main())
    return 0


def _rebuild(_: argparse.Namespace) -> int:
    async def main() -> int:
        projector, pool = await _projector(get_settings())
        try:
            await projector.store.reset(projector.name)
            await projector.catch_up()
            return len(await projector.store.snapshot())
        finally:
            await pool.close()

    print(f"plan cache rebuilt from the log: {asyncio.run(main())} entries")
    return 0


def _purge(_: argparse.Namespace) -> int:
    async def main() -> int:
        projector, pool = await _projector(get_settings())
        try:
            purged: int = await projector.store.purge_expired(datetime.now(UTC))
            return purged
        finally:
            await pool.close()

    print(f"expired entries deleted: {asyncio.run(main())}")
    return 0


def _invalidate(args: argparse.Namespace) -> int:
    from domain.events import PlanCacheInvalidated

    scope = "template" if args.template else "tenant"
    return _append(PlanCacheInvalidated, args.tenant, scope, args.template, args.reason)


def _share(args: argparse.Namespace) -> int:
    from domain.events import PlanTemplateShared

    return _append(PlanTemplateShared, args.tenant, args.template, tuple(args.grantees))


def _append(cls: Any, tenant: str, *fields: Any) -> int:
    from domain import ids
    from streams.codec import EventCodec
    from streams.producer import KafkaEventAppender
    from streams.schema_registry import SchemaRegistry

    settings = get_settings()
    env = ids.envelope(
        cls,
        run_id=f"plan-cache-{tenant}",  # one partition: a tenant's decisions stay ordered
        tenant_id=tenant,
        actor="cli",
        correlation_id=str(uuid.uuid4()),
        discriminator=(str(uuid.uuid4()),),
    )

    async def main() -> None:
        appender = KafkaEventAppender(
            settings, EventCodec(SchemaRegistry.from_dir(settings.schemas_dir))
        )
        try:
            await appender.append(cls(env, *fields))
        finally:
            await appender.stop()

    asyncio.run(main())
    print(f"appended {cls.EVENT_TYPE} {env.event_id}")
    return 0
