"""``omnihub plan-cache rebuild|purge|invalidate|share``: the operators' side of the cache."""

from __future__ import annotations

import argparse
import asyncio
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any

from apps.commands.operator import Operator, add_as, operator_of, record_operation
from omnihub.settings import Settings, get_settings

Consumer = Callable[[Settings], AbstractAsyncContextManager[Any]]


def register_ops(cmds: Any, consumer: Consumer) -> None:
    """Add the operators' commands to the ``plan-cache`` group (see :mod:`apps.plan_cache`)."""
    rebuild = cmds.add_parser("rebuild", help="empty the cache and replay the whole log")
    add_as(rebuild)
    rebuild.set_defaults(handler=lambda args: _rebuild(consumer, operator_of(args)))
    purge = cmds.add_parser("purge", help="delete expired entries")
    add_as(purge)
    purge.set_defaults(handler=lambda args: _purge(consumer, operator_of(args)))
    inv = cmds.add_parser("invalidate", help="append plan_cache_invalidated")
    inv.add_argument("--tenant", required=True)
    inv.add_argument("--template", help="only this template (default: the whole tenant)")
    inv.add_argument("--reason", default="")
    add_as(inv)
    inv.set_defaults(handler=_invalidate)
    share = cmds.add_parser("share", help="append plan_template_shared (replaces the list)")
    share.add_argument("--tenant", required=True)
    share.add_argument("--template", required=True)
    share.add_argument("--with", dest="grantees", nargs="*", default=[], help="tenants or *")
    add_as(share)
    share.set_defaults(handler=_share)
    cmds.add_parser(
        "export-onnx", help="export the embedding model to ONNX (else done on first use)"
    ).set_defaults(handler=_export_onnx)


def _export_onnx(_: argparse.Namespace) -> int:
    from projections.plan_cache.onnx_embedder import ensure_onnx

    print(ensure_onnx(get_settings().plan_cache_model_path))
    return 0


def _rebuild(consumer: Consumer, operator: Operator) -> int:
    async def main() -> int:
        settings = get_settings()
        async with consumer(settings) as log_consumer:
            folder = log_consumer.handlers[0]
            await folder.store.reset(folder.name)
            await log_consumer.catch_up()
            entries = len(await folder.store.snapshot())
        await record_operation(
            settings, operator, "plan_cache_rebuild", "plan_cache", {"entries": str(entries)}
        )
        return entries

    print(f"plan cache rebuilt from the log: {asyncio.run(main())} entries")
    return 0


def _purge(consumer: Consumer, operator: Operator) -> int:
    async def main() -> int:
        settings = get_settings()
        async with consumer(settings) as log_consumer:
            purged: int = await log_consumer.handlers[0].store.purge_expired(datetime.now(UTC))
        await record_operation(
            settings, operator, "plan_cache_purge", "plan_cache", {"purged": str(purged)}
        )
        return purged

    print(f"expired entries deleted: {asyncio.run(main())}")
    return 0


def _invalidate(args: argparse.Namespace) -> int:
    from domain.events import PlanCacheInvalidated

    scope = "template" if args.template else "tenant"
    return _append(
        operator_of(args), PlanCacheInvalidated, args.tenant, scope, args.template, args.reason
    )


def _share(args: argparse.Namespace) -> int:
    from domain.events import PlanTemplateShared

    return _append(
        operator_of(args), PlanTemplateShared, args.tenant, args.template, tuple(args.grantees)
    )


def _append(operator: Operator, cls: Any, tenant: str, *fields: Any) -> int:
    from domain import ids
    from projections.keyring import privacy_for
    from streams.codec import EventCodec
    from streams.producer import KafkaEventAppender
    from streams.schema_registry import SchemaRegistry

    settings = get_settings()
    env = ids.envelope(
        cls,
        run_id=f"plan-cache-{tenant}",  # one partition: a tenant's decisions stay ordered
        tenant_id=tenant,
        actor=operator.actor,
        correlation_id=str(uuid.uuid4()),
        discriminator=(str(uuid.uuid4()),),
    )

    async def main() -> None:
        codec = EventCodec(SchemaRegistry.from_dir(settings.schemas_dir))
        privacy = privacy_for(settings, codec.registry)  # an invalidation's reason
        appender = KafkaEventAppender(settings, codec, privacy=privacy)
        try:
            await appender.append(cls(env, *fields))
        finally:
            await appender.stop()
            await privacy.close()

    asyncio.run(main())
    print(f"appended {cls.EVENT_TYPE} {env.event_id}")
    return 0
