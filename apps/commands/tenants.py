"""``omnihub tenants set-tier``: an operator sets a tenant's subscription tier.

It appends ``subscription_changed`` straight to the log (the operator has Kafka access,
as for ``omnihub keys create``), its reason sealed with the tenant's data key. The
gateway folds it into the tenant projection, and the tier's entitlements apply within
seconds, with no restart (README, *Tiers and entitlements*). ``PUT
/api/v1/admin/tenants/{id}/tier`` does the same over HTTP.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from datetime import datetime
from typing import Any

from apps.commands.operator import add_as, operator_of
from domain.tiers import TIER_NAMES
from omnihub.settings import Settings, get_settings


def register(sub: Any) -> None:
    """Add ``tenants set-tier``."""
    tenants = sub.add_parser("tenants", help="tenants' subscription tiers")
    ts = tenants.add_subparsers(dest="action", required=True)
    set_tier = ts.add_parser("set-tier", help="append subscription_changed for a tenant")
    set_tier.add_argument("--tenant", required=True)
    set_tier.add_argument("--tier", required=True, choices=TIER_NAMES)
    set_tier.add_argument("--until", type=datetime.fromisoformat, help="ISO time, with zone")
    set_tier.add_argument("--reason", default="")
    add_as(set_tier)
    set_tier.set_defaults(handler=_set_tier)


def _set_tier(args: argparse.Namespace) -> int:
    from domain.entitlements import subscription_change

    try:
        event = subscription_change(
            args.tenant,
            args.tier,
            actor=operator_of(args).actor,
            reason=args.reason,
            expires_at=args.until,
            request_id=str(uuid.uuid4()),
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from streams.producer import LogUnavailable

    try:
        asyncio.run(_append(get_settings(), event))
    except LogUnavailable as error:
        print(f"error: not recorded: {error}", file=sys.stderr)
        return 1
    until = args.until.isoformat() if args.until else "no end"
    print(
        f"tenant {args.tenant}: tier {args.tier} ({until}) by {event.envelope.actor}, "
        f"event {event.envelope.event_id}"
    )
    return 0


async def _append(settings: Settings, event: Any) -> None:
    from projections.keyring import privacy_for
    from streams.admin import ensure_declared_topics
    from streams.codec import EventCodec
    from streams.producer import KafkaEventAppender
    from streams.schema_registry import SchemaRegistry

    await ensure_declared_topics(settings)
    codec = EventCodec(SchemaRegistry.from_dir(settings.schemas_dir))
    privacy = privacy_for(settings, codec.registry)  # the reason: the tenant's data key
    appender = KafkaEventAppender(settings, codec, privacy=privacy)
    try:
        await appender.append(event)
    finally:
        await appender.stop()
        await privacy.close()
