"""The tenant projection: the facts a tenant's tier is made of, folded into Postgres.

``gateway-tiers`` (the gateway process) folds ``subscription_changed``,
``wallet_linked`` / ``wallet_unlinked`` and ``membership_changed`` into three tables
(migration 0250). Only facts are stored, never the resulting tier: :func:`load_state`
reads them back as :class:`domain.entitlements.TenantTiers`, and
:func:`domain.entitlements.effective` evaluates it at the time of the read, so a
membership or subscription that expires stops counting at its expiry, with no event.

Folding is idempotent: each write keeps the latest fact (a redelivered event writes the
same row again), and the consumer's position sits in the same transaction.
"""

from __future__ import annotations

import time
from datetime import datetime

import asyncpg

from domain.entitlements import Effective, Subscription, TenantTiers, Token, effective
from domain.events import (
    Event,
    MembershipChanged,
    SubscriptionChanged,
    WalletLinked,
    WalletUnlinked,
)
from domain.tiers import TierName, tier
from streams.positions import PG_TRANSIENT

_SUBSCRIPTION = (
    "INSERT INTO tenant_subscriptions (tenant_id, tier, expires_at, reason, changed_by,"
    " changed_at, event_id) VALUES ($1, $2, $3, $4, $5, $6, $7)"
    " ON CONFLICT (tenant_id) DO UPDATE SET tier = EXCLUDED.tier,"
    " expires_at = EXCLUDED.expires_at, reason = EXCLUDED.reason,"
    " changed_by = EXCLUDED.changed_by, changed_at = EXCLUDED.changed_at,"
    " event_id = EXCLUDED.event_id"
)
_TOKEN = (
    "INSERT INTO membership_tokens (token_key, chain_id, contract, token_id, holder, tier,"
    " expires_at, event_id, changed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    " ON CONFLICT (token_key) DO UPDATE SET holder = EXCLUDED.holder, tier = EXCLUDED.tier,"
    " expires_at = EXCLUDED.expires_at, event_id = EXCLUDED.event_id,"
    " changed_at = EXCLUDED.changed_at"
)


async def apply_tier_event(conn: asyncpg.Connection, event: Event) -> None:
    """Fold one event (inside the caller's transaction); other types change nothing."""
    env = event.envelope
    if isinstance(event, SubscriptionChanged):
        await conn.execute(
            _SUBSCRIPTION,
            env.tenant_id,
            tier(event.tier).name,
            event.expires_at,
            event.reason,
            env.actor,
            env.occurred_at,
            env.event_id,
        )
    elif isinstance(event, WalletLinked):
        await conn.execute(
            "INSERT INTO tenant_wallets (tenant_id, address, linked_at, event_id)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            env.tenant_id,
            event.address.lower(),
            env.occurred_at,
            env.event_id,
        )
    elif isinstance(event, WalletUnlinked):
        await conn.execute(
            "DELETE FROM tenant_wallets WHERE tenant_id = $1 AND address = $2",
            env.tenant_id,
            event.address.lower(),
        )
    elif isinstance(event, MembershipChanged):
        await _apply_membership(conn, event)


async def _apply_membership(conn: asyncpg.Connection, event: MembershipChanged) -> None:
    contract = event.contract.lower()
    key = f"{event.chain_id}:{contract}:{event.token_id}"
    holder = "" if event.change == "revoked" else event.holder.lower()
    await conn.execute(
        _TOKEN,
        key,
        event.chain_id,
        contract,
        event.token_id,
        holder,
        tier(event.tier).name,
        event.expires_at,
        event.envelope.event_id,
        event.envelope.occurred_at,
    )


async def load_state(conn: asyncpg.Connection, tenant_id: str) -> TenantTiers:
    """The stored facts of ``tenant_id``: subscription, wallets, their tokens."""
    sub = await conn.fetchrow(
        "SELECT tier, expires_at, event_id FROM tenant_subscriptions WHERE tenant_id = $1",
        tenant_id,
    )
    wallets = [
        r["address"]
        for r in await conn.fetch(
            "SELECT address FROM tenant_wallets WHERE tenant_id = $1", tenant_id
        )
    ]
    tokens = await conn.fetch(
        "SELECT token_key, chain_id, contract, token_id, holder, tier, expires_at, event_id"
        " FROM membership_tokens WHERE holder = ANY($1::text[])",
        wallets,
    )
    return TenantTiers(
        tenant_id=tenant_id,
        subscription=None
        if sub is None
        else Subscription(tier(sub["tier"]).name, sub["expires_at"], sub["event_id"]),
        wallets=frozenset(wallets),
        tokens={r["token_key"]: _token(r) for r in tokens},
    )


def _token(row: asyncpg.Record) -> Token:
    return Token(
        chain_id=row["chain_id"],
        contract=row["contract"],
        token_id=row["token_id"],
        holder=row["holder"],
        tier=tier(row["tier"]).name,
        expires_at=row["expires_at"],
        event_id=row["event_id"],
    )


async def subscription_event_id(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str) -> str:
    """The event id of ``tenant_id``'s current subscription ('' for none): what the admin
    route waits on."""
    value = await conn.fetchval(
        "SELECT event_id FROM tenant_subscriptions WHERE tenant_id = $1", tenant_id
    )
    return str(value or "")


class PgTierLookup:
    """A tenant's tier at a time, from the projection (the saga bridge's
    :class:`~sagas.bridge.TierLookup`); each tenant's facts are read at most once per
    ``ttl_s``, so a burst of goals costs one read per tenant, not one per goal."""

    transient = PG_TRANSIENT

    def __init__(self, pool: asyncpg.Pool, default: TierName = "free", ttl_s: float = 1.0) -> None:
        self._pool = pool
        self._default = default
        self._ttl_s = ttl_s
        self._cached: dict[str, tuple[float, TenantTiers]] = {}

    async def at(self, tenant_id: str, when: datetime) -> Effective:
        """The tier ``tenant_id`` had at ``when``, by the facts folded so far."""
        asked_at = time.monotonic()
        hit = self._cached.get(tenant_id)
        if hit is None or asked_at >= hit[0]:
            async with self._pool.acquire() as conn:
                hit = (asked_at + self._ttl_s, await load_state(conn, tenant_id))
            self._cached[tenant_id] = hit
        return effective(hit[1], when, self._default)
