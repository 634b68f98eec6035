"""``omnihub privacy ...``: crypto-shredding (issue 13).

``erase`` destroys the data keys of a data subject (``--subject S``, in every tenant) or
of a tenant (``--tenant T``, its own key and its data subjects'), appends
``subject_erased`` for each run they sealed and an audit fact naming who asked.
``rotate-kek`` re-wraps every data key with ``OMNIHUB_PRIVACY_KEK`` (the old KEK in
``OMNIHUB_PRIVACY_OLD_KEKS``); the log is not touched.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from apps.commands.operator import add_as, operator_of, record_operation
from omnihub.settings import get_settings


def register(sub: Any) -> None:
    privacy = sub.add_parser("privacy", help="erase a subject's personal data, rotate the KEK")
    ps = privacy.add_subparsers(dest="action", required=True)
    erase = ps.add_parser("erase", help="destroy a subject's data keys (irreversible)")
    who = erase.add_mutually_exclusive_group(required=True)
    who.add_argument("--subject", help="a data subject named in requests (context data_subject)")
    who.add_argument("--tenant", help="every key of this tenant")
    add_as(erase)
    erase.add_argument("--json", action="store_true")
    erase.set_defaults(handler=lambda a: asyncio.run(_erase(a)))
    rotate = ps.add_parser("rotate-kek", help="re-wrap every data key with the current KEK")
    add_as(rotate)
    rotate.set_defaults(handler=lambda a: asyncio.run(_rotate(a)))


async def _erase(args: argparse.Namespace) -> int:
    from projections.keyring import PgKeyStore
    from projections.shredding import erase_subject
    from streams.codec import EventCodec
    from streams.producer import KafkaEventAppender
    from streams.schema_registry import SchemaRegistry

    settings = get_settings()
    store = PgKeyStore(settings)
    appender = KafkaEventAppender(
        settings, EventCodec(SchemaRegistry.from_dir(settings.schemas_dir))
    )
    operator = operator_of(args)
    requested_by = operator.actor
    try:
        erased = await erase_subject(
            store,
            appender,
            tenant_id=args.tenant,
            subject=args.subject,
            requested_by=requested_by,
            details=operator.details(),
        )
    finally:
        await appender.stop()
        await store.close()
    rows = [
        {"key_id": e.key_id, "tenant_id": e.tenant_id, "scope": e.scope, "runs": len(e.run_ids)}
        for e in erased
    ]
    if args.json:
        print(json.dumps({"erased": rows, "requested_by": requested_by}))
    elif not rows:
        print("no live data key for that subject: nothing to erase")
    for r in [] if args.json else rows:
        print(f"erased {r['scope']} key {r['key_id']} of {r['tenant_id']}: {r['runs']} run(s)")
    return 0


async def _rotate(args: argparse.Namespace) -> int:
    from projections.keyring import PgKeyStore

    settings = get_settings()
    store = PgKeyStore(settings)
    try:
        count = await store.rewrap()
    finally:
        await store.close()
    await record_operation(
        settings, operator_of(args), "privacy_rotate_kek", "privacy_keys", {"rewrapped": str(count)}
    )
    print(f"re-wrapped {count} data key(s) with the current KEK")
    return 0
