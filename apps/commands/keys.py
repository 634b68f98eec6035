"""``omnihub keys ...``: the operator's side of the gateway's keys.

``keys create`` appends ``api_key_created`` straight to the log (the operator has Kafka
access; this is how the first admin key of a tenant is made) and waits for the keys
projection, so the printed key works at once. A key's name and a revocation's reason are
sealed with the tenant's data key, as the API seals them; ``keys list`` opens the names.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from apps.commands.operator import Operator, add_as, operator_of, os_user
from omnihub.settings import Settings, get_settings


def register(sub: Any) -> None:
    keys = sub.add_parser("keys", help="create, list, rotate and revoke API keys")
    ks = keys.add_subparsers(dest="action", required=True)
    create = ks.add_parser("create", help="create a key (printed once)")
    create.add_argument("--tenant", required=True)
    create.add_argument("--scopes", required=True, help="comma-separated, e.g. admin")
    create.add_argument("--name", default="")
    create.add_argument("--expires-in-days", type=int)
    add_as(create)
    create.set_defaults(handler=_run, op=_create)
    listing = ks.add_parser("list", help="a tenant's keys (no secrets)")
    listing.add_argument("--tenant", required=True)
    listing.set_defaults(handler=_run, op=_list)
    for name, op in (("rotate", _rotate), ("revoke", _revoke)):
        p = ks.add_parser(name, help=f"{name} a key")
        p.add_argument("--tenant", required=True)
        p.add_argument("key_id")
        p.add_argument("--grace-s", type=int, default=3600, help="rotate: old key's grace")
        p.add_argument("--reason", default="", help="revoke: why")
        add_as(p)
        p.set_defaults(handler=_run, op=op)


def _run(args: argparse.Namespace) -> int:
    code: int = asyncio.run(args.op(get_settings(), args))
    return code


async def _pool(settings: Settings) -> asyncpg.Pool:
    from apps.gateway import open_pool

    return await open_pool(settings)


async def _append_and_wait(settings: Settings, event: Any, key_id: str, ready: Any) -> bool:
    from api.security.key_admin import wait_for_key
    from projections.keyring import privacy_for
    from streams.codec import EventCodec
    from streams.producer import KafkaEventAppender
    from streams.schema_registry import SchemaRegistry

    codec = EventCodec(SchemaRegistry.from_dir(settings.schemas_dir))
    privacy = privacy_for(settings, codec.registry)
    appender = KafkaEventAppender(settings, codec, privacy=privacy)
    try:
        await appender.append(event)
    finally:
        await appender.stop()
        await privacy.close()
    pool = await _pool(settings)
    try:
        found = await wait_for_key(
            pool,
            key_id,
            ready,
            timeout_s=max(settings.key_projection_wait_s, 15),
            schema=settings.projections_schema,
        )
    finally:
        await pool.close()
    if found is None:
        print(
            "appended, but the keys projection has not shown it yet: is the gateway "
            "processor (omnihub gateway run) running?",
            file=sys.stderr,
        )
    return found is not None


async def operator_key(settings: Settings, tenant: str, scope_names: list[str], name: str) -> str:
    """Mint a key as the operator (straight to the log) and wait until it works."""
    from api.security.key_admin import created

    actor = Operator(os_user()).actor
    event, plaintext = created(settings.secret_key, tenant, scope_names, actor=actor, name=name)
    if not await _append_and_wait(settings, event, event.key_id, lambda k: True):
        raise RuntimeError("the key was appended but never became active")
    return plaintext


async def _create(settings: Settings, args: argparse.Namespace) -> int:
    from api.security.key_admin import created
    from domain.scopes import TENANT_PATTERN, UnknownScope, parse_scope_list, valid_tenant

    if not valid_tenant(args.tenant):
        print(f"keys create: --tenant must match {TENANT_PATTERN}", file=sys.stderr)
        return 2
    expires = None
    if args.expires_in_days:
        expires = datetime.now(UTC) + timedelta(days=args.expires_in_days)
    try:
        event, plaintext = created(
            settings.secret_key,
            args.tenant,
            parse_scope_list(args.scopes),
            actor=operator_of(args).actor,
            name=args.name,
            expires_at=expires,
        )
    except UnknownScope as exc:
        print(exc, file=sys.stderr)
        return 2
    active = await _append_and_wait(settings, event, event.key_id, lambda k: True)
    print(f"key_id: {event.key_id}\nprefix: {event.prefix}\nscopes: {','.join(event.scopes)}")
    print(f"key:    {plaintext}\n(shown once: store it now)")
    return 0 if active else 1


LIST_HEADER = ("KEY_ID", "KEY", "SCOPES", "STATE", "LAST_USED", "NAME")


def key_table(found: list[Any], last_used: dict[str, datetime] | None) -> list[str]:
    """``keys list``'s lines: a header, then a key a line, columns aligned. A key's last
    use is precise to a minute (see api/security/last_used.py); ``never`` if none is
    recorded, ``unknown`` for every key when the uses could not be read (None)."""
    rows = [LIST_HEADER]
    for k in found:
        if k.revoked_at:
            state = "revoked"
        else:
            until = k.expires_at.astimezone(UTC) if k.expires_at else None
            state = f"expires {until:%Y-%m-%d %H:%M}Z" if until else "active"
        used = None if last_used is None else last_used.get(k.key_id)
        when = f"{used.astimezone(UTC):%Y-%m-%d %H:%M}Z" if used else "never"
        when = "unknown" if last_used is None else when
        rows.append((k.key_id, f"omh_{k.prefix}_…", ",".join(k.scopes), state, when, k.name))
    widths = [max(len(row[i]) for row in rows) for i in range(len(LIST_HEADER) - 1)]
    return [
        "  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[-1]]).rstrip()
        for row in rows
    ]


async def _list(settings: Settings, args: argparse.Namespace) -> int:
    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    from api.security.last_used import last_uses
    from projections.keyring import privacy_for
    from projections.keys import list_keys
    from streams.privacy import open_fields
    from streams.schema_registry import SchemaRegistry

    pool = await _pool(settings)
    privacy = privacy_for(settings, SchemaRegistry.from_dir(settings.schemas_dir))
    try:
        async with pool.acquire() as conn:
            found = await list_keys(conn, args.tenant)
        found = await open_fields(privacy, found, "name")  # sealed in the projection
    finally:
        await privacy.close()
        await pool.close()
    redis = Redis.from_url(settings.redis_url, socket_connect_timeout=2)
    used: dict[str, datetime] | None
    try:
        used = await last_uses(redis, settings.topic_prefix, [k.key_id for k in found])
    except (RedisError, OSError) as exc:  # the keys are still worth listing
        print(f"last uses unknown (Redis at {settings.redis_url}: {exc!r})", file=sys.stderr)
        used = None
    finally:
        await redis.aclose()
    for line in key_table(found, used):
        print(line)
    return 0


async def _existing(settings: Settings, tenant: str, key_id: str) -> Any:
    from projections.keys import by_id

    pool = await _pool(settings)
    try:
        found = await by_id(pool, key_id)
    finally:
        await pool.close()
    if found is None or found.tenant_id != tenant:
        print(f"no key {key_id} in tenant {tenant}", file=sys.stderr)
        return None
    return found


async def _rotate(settings: Settings, args: argparse.Namespace) -> int:
    from api.security.key_admin import rotated

    old = await _existing(settings, args.tenant, args.key_id)
    if old is None:
        return 1
    event, plaintext = rotated(
        settings.secret_key,
        old,
        actor=operator_of(args).actor,
        grace=timedelta(seconds=args.grace_s),
    )
    active = await _append_and_wait(settings, event, event.new_key_id, lambda k: True)
    print(
        f"key_id: {event.new_key_id}\nkey:    {plaintext}\n(old key valid until "
        f"{event.old_key_expires_at.isoformat()})"
    )
    return 0 if active else 1


async def _revoke(settings: Settings, args: argparse.Namespace) -> int:
    from api.security.key_admin import revoked

    old = await _existing(settings, args.tenant, args.key_id)
    if old is None:
        return 1
    event = revoked(old, actor=operator_of(args).actor, reason=args.reason)
    done = await _append_and_wait(settings, event, old.key_id, lambda k: k.revoked_at is not None)
    print(f"revoked {old.key_id}" if done else "revocation appended, not yet projected")
    return 0 if done else 1
