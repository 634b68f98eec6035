"""The tenant projection's fold against the real Postgres: what ``load_state`` reads back
after subscriptions, wallet links and membership changes (transfers, revocations, a
reorg's retraction), folded twice where a redelivery could, and what it means at a time."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from domain import ids
from domain.entitlements import effective, subscription_change
from domain.events import Event, MembershipChanged, WalletLinked, WalletUnlinked
from omnihub.settings import get_settings
from projections.migrate import apply_migrations, quote_ident
from projections.tenant_tiers import PgTierLookup, apply_tier_event, load_state

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ALICE = "0x19E7E376E7C213B7E7e7e46cc70A5dD086DAff2A"
BOB = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


@pytest.fixture
async def pool() -> AsyncIterator[asyncpg.Pool]:
    name = f"tiers_{uuid.uuid4().hex[:10]}"
    path = f"{quote_ident(name)}, public"
    pool = await asyncpg.create_pool(
        get_settings().postgres_dsn, min_size=1, max_size=2, server_settings={"search_path": path}
    )
    async with pool.acquire() as conn:
        await apply_migrations(conn, schema=name)
    yield pool
    async with pool.acquire() as conn:
        await conn.execute(f"DROP SCHEMA {quote_ident(name)} CASCADE")
    await pool.close()


async def fold(pool: asyncpg.Pool, *events: Event) -> None:
    async with pool.acquire() as conn, conn.transaction():
        for event in events:
            await apply_tier_event(conn, event)


def _env(cls: type[Event], tenant: str, key: str):  # type: ignore[no-untyped-def]
    return ids.envelope(
        cls, run_id=key, tenant_id=tenant, actor="test", correlation_id="c",
        discriminator=(str(uuid.uuid4()),), occurred_at=NOW,
    )  # fmt: skip


def link(tenant: str, address: str) -> WalletLinked:
    return WalletLinked(
        _env(WalletLinked, tenant, f"wallets-{tenant}"), address, 31337, "d", "n", NOW
    )


def unlink(tenant: str, address: str) -> WalletUnlinked:
    return WalletUnlinked(_env(WalletUnlinked, tenant, f"wallets-{tenant}"), address, "lost")


def token(token_id: str, change: str, holder: str, tier: str, days: int) -> MembershipChanged:
    return MembershipChanged(
        _env(MembershipChanged, "*", "membership-31337"),
        chain_id=31337,
        contract=CONTRACT,
        token_id=token_id,
        change=change,
        holder=holder,
        tier=tier,
        expires_at=NOW + timedelta(days=days),
        block_number=1,
        block_hash="0x" + "ab" * 32,
        tx_hash="0x" + "cd" * 32,
        log_index=0,
    )


async def tier_of(pool: asyncpg.Pool, tenant: str, at: datetime = NOW) -> tuple[str, str]:
    async with pool.acquire() as conn:
        result = effective(await load_state(conn, tenant), at)
    return result.tier, result.source


async def test_subscriptions_and_memberships_fold_into_the_best_tier(pool: asyncpg.Pool) -> None:
    sub = subscription_change(
        "acme", "starter", actor="op", expires_at=NOW + timedelta(days=10), request_id="r1"
    )
    minted = token("1", "minted", ALICE, "pro", 30)
    await fold(pool, sub, link("acme", ALICE), minted)
    await fold(pool, sub, link("acme", ALICE), minted)  # redelivered: the same facts
    source = f"membership:31337:{CONTRACT.lower()}:1"
    assert await tier_of(pool, "acme") == ("pro", source)
    assert await tier_of(pool, "acme", NOW + timedelta(days=30)) == ("free", "default")
    assert await tier_of(pool, "acme", NOW + timedelta(days=5)) == ("pro", source)
    assert await tier_of(pool, "other") == ("free", "default")  # nobody else's wallet

    await fold(pool, token("1", "transferred", BOB, "pro", 30))  # Bob is no wallet of acme
    assert await tier_of(pool, "acme") == ("starter", "subscription")
    await fold(pool, link("beta", BOB))
    assert await tier_of(pool, "beta") == ("pro", source)


async def test_unlinking_revoking_and_a_retraction(pool: asyncpg.Pool) -> None:
    await fold(pool, link("acme", ALICE), token("7", "minted", ALICE, "enterprise", 30))
    assert (await tier_of(pool, "acme"))[0] == "enterprise"
    await fold(pool, unlink("acme", ALICE))
    assert await tier_of(pool, "acme") == ("free", "default")
    await fold(pool, link("acme", ALICE))
    assert (await tier_of(pool, "acme"))[0] == "enterprise"
    await fold(pool, token("7", "revoked", ALICE, "enterprise", 30))
    assert await tier_of(pool, "acme") == ("free", "default")
    # A reorg took the revocation back: the retraction restores the holder.
    await fold(pool, token("7", "retracted", ALICE, "enterprise", 30))
    assert (await tier_of(pool, "acme"))[0] == "enterprise"
    lookup = PgTierLookup(pool, default="starter", ttl_s=0)
    assert (await lookup.at("nobody", NOW)).tier == "starter"
    assert (await lookup.at("acme", NOW + timedelta(days=31))).tier == "starter"
