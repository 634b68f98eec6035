"""The tenant projection end to end: real API and gateway processor on the test stack.

``omnihub tenants set-tier`` and ``PUT /api/v1/admin/tenants/{id}/tier`` append
``subscription_changed``; the gateway folds it with wallet links and memberships, and
``GET /api/v1/tenant`` shows the tier, its source and every entitlement within seconds,
with no restart. An expired membership falls back to the subscription, an expired
subscription to free. A tenant's own admin cannot set its tier.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from domain import ids
from domain.events import Event, MembershipChanged, WalletLinked
from domain.tiers import TIERS
from infra.launch import running_api
from infra.stack import StackConfig
from omnihub import REPO_ROOT
from omnihub.settings import Settings
from streams.codec import EventCodec
from streams.producer import KafkaEventAppender
from streams.schema_registry import SchemaRegistry
from tests.e2e.gateway_stack import CliKey, cli_key, gateway_env, omnihub, running_processor

WALLET = "0x19E7E376E7C213B7E7e7e46cc70A5dD086DAff2A"
CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


@pytest.fixture(scope="module")
def env(stack: StackConfig) -> dict[str, str]:
    return gateway_env(stack)


@pytest.fixture(scope="module")
def api(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    logs: Path = tmp_path_factory.mktemp("tenant-projection")
    with running_processor(env, logs), running_api(env, logs) as url:
        yield url


@pytest.fixture(scope="module")
def operator(api: str, env: dict[str, str]) -> CliKey:
    return cli_key(env, "platform", "platform:tiers")


def tenant() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def bearer(key: CliKey) -> dict[str, str]:
    return {"Authorization": f"Bearer {key.key}"}


async def until(url: str, key: CliKey, ok: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """``GET /api/v1/tenant`` until ``ok`` holds (at most 20 s)."""
    deadline = time.monotonic() + 20
    async with httpx.AsyncClient(base_url=url, timeout=30) as c:
        while True:
            r = await c.get("/api/v1/tenant", headers=bearer(key))
            assert r.status_code == 200, r.text
            body: dict[str, Any] = r.json()
            if ok(body):
                return body
            assert time.monotonic() < deadline, body
            await asyncio.sleep(0.2)


async def append(env: dict[str, str], *events: Event) -> None:
    settings = Settings(
        kafka_bootstrap=env["OMNIHUB_KAFKA_BOOTSTRAP"],
        topic_prefix=env["OMNIHUB_TOPIC_PREFIX"],
        topic_partitions=3,
    )
    appender = KafkaEventAppender(
        settings, EventCodec(SchemaRegistry.from_dir(REPO_ROOT / "schemas"))
    )
    try:
        await appender.append_many(events)
    finally:
        await appender.stop()


def linked(tenant_id: str) -> WalletLinked:
    return WalletLinked(
        envelope=ids.envelope(
            WalletLinked,
            run_id=f"wallets-{tenant_id}",
            tenant_id=tenant_id,
            actor="test",
            correlation_id="c",
            discriminator=(tenant_id, WALLET),
        ),
        address=WALLET,
        chain_id=31337,
        siwe_domain="127.0.0.1",
        siwe_nonce=uuid.uuid4().hex,
        signed_at=datetime.now(UTC),
    )


def membership(token_id: str, tier: str, expires_at: datetime) -> MembershipChanged:
    return MembershipChanged(
        envelope=ids.envelope(
            MembershipChanged,
            run_id="membership-31337",
            tenant_id="*",
            actor="chain-watcher",
            correlation_id="c",
            discriminator=(token_id, str(uuid.uuid4())),
        ),
        chain_id=31337,
        contract=CONTRACT,
        token_id=token_id,
        change="minted",
        holder=WALLET,
        tier=tier,
        expires_at=expires_at,
        block_number=1,
        block_hash="0x" + "ab" * 32,
        tx_hash="0x" + uuid.uuid4().hex * 2,
        log_index=0,
    )


async def test_a_new_tenant_is_free_with_every_entitlement(api: str, env: dict[str, str]) -> None:
    key = cli_key(env, tenant(), "read")
    body = await until(api, key, lambda b: True)
    assert (body["tier"], body["source"], body["expires_at"]) == ("free", "default", None)
    free = TIERS["free"].entitlements()
    assert set(body["entitlements"]) == set(free)
    assert body["entitlements"]["max_plan_steps"] == {"value": 5, "source": "default"}
    assert body["entitlements"]["approval_timeout_s"]["value"] == list(free["approval_timeout_s"])
    assert body["sources"] == [
        {"source": "default", "tier": "free", "expires_at": None, "active": True, "wallet": None}
    ]


async def test_set_tier_takes_effect_within_seconds(api: str, env: dict[str, str]) -> None:
    t = tenant()
    key = cli_key(env, t, "read")
    await until(api, key, lambda b: b["tier"] == "free")
    done = omnihub(env, "tenants", "set-tier", "--tenant", t, "--tier", "pro", "--reason", "paid")
    assert done.returncode == 0, done.stderr
    started = time.monotonic()
    body = await until(api, key, lambda b: b["tier"] == "pro")
    assert time.monotonic() - started < 10
    assert body["source"] == "subscription"
    assert body["entitlements"]["llm_planner"] == {"value": True, "source": "subscription"}


async def test_only_a_platform_operator_sets_a_tier(
    api: str, env: dict[str, str], operator: CliKey
) -> None:
    t = tenant()
    admin = cli_key(env, t, "admin")
    change = {"tier": "enterprise", "reason": "let me in"}
    async with httpx.AsyncClient(base_url=api, timeout=30) as c:
        own = await c.put(f"/api/v1/admin/tenants/{t}/tier", json=change, headers=bearer(admin))
        assert own.status_code == 403 and own.json()["needed"] == "platform:tiers", own.text
        soon = datetime.now(UTC) + timedelta(seconds=4)
        r = await c.put(
            f"/api/v1/admin/tenants/{t}/tier",
            json={"tier": "starter", "reason": "trial", "expires_at": soon.isoformat()},
            headers=bearer(operator),
        )
        assert r.status_code == 200, r.text
        assert r.json()["applied"] is True and r.json()["tier"] == "starter"
        bad = await c.put(
            f"/api/v1/admin/tenants/{t}/tier",
            json={"tier": "platinum", "reason": "x"},
            headers=bearer(operator),
        )
        assert bad.status_code == 422, bad.text
    body = await until(api, admin, lambda b: True)
    assert (body["tier"], body["source"]) == ("starter", "subscription")
    # The trial ends: free again, with no event, and the expired source still listed.
    body = await until(api, admin, lambda b: b["tier"] == "free")
    assert [(s["source"], s["active"]) for s in body["sources"]] == [
        ("default", True),
        ("subscription", False),
    ]


async def test_an_expired_membership_falls_back_to_the_subscription(
    api: str, env: dict[str, str]
) -> None:
    t = tenant()
    key = cli_key(env, t, "read")
    done = omnihub(env, "tenants", "set-tier", "--tenant", t, "--tier", "starter")
    assert done.returncode == 0, done.stderr
    ends = (datetime.now(UTC) + timedelta(seconds=5)).replace(microsecond=0)
    token = str(uuid.uuid4().int % 10**9)
    await append(env, linked(t), membership(token, "enterprise", ends))
    source = f"membership:31337:{CONTRACT.lower()}:{token}"
    body = await until(api, key, lambda b: b["tier"] == "enterprise")
    assert body["source"] == source
    assert datetime.fromisoformat(body["expires_at"]) == ends
    assert body["entitlements"]["goals_per_month"] == {"value": None, "source": source}
    assert any(s["wallet"] == WALLET.lower() for s in body["sources"])
    body = await until(api, key, lambda b: b["tier"] == "starter")
    assert body["source"] == "subscription"
