"""Wallet sign-in end to end: real API and gateway processor on the test stack.

A tenant admin asks for a nonce, signs the SIWE message with a wallet key and links the
wallet (``wallet_linked`` in the log). Replays, foreign domains, wrong chains, other
signers and malformed messages are refused with problem details and an audit fact.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from domain.events import AuditFactObserved, Event, WalletLinked, WalletUnlinked
from domain.privacy import PREFIX as SEALED
from domain.siwe import SiweMessage, render
from infra.launch import running_api
from infra.stack import StackConfig
from omnihub import REPO_ROOT
from projections.keyring import privacy_for
from streams.codec import EventCodec
from streams.log_reader import read_log
from streams.schema_registry import SchemaRegistry
from tests.e2e.gateway_stack import CliKey, cli_key, gateway_env, running_processor
from tests.e2e.test_privacy_api import settings_of

WALLET = Account.from_key("0x" + "44" * 32)
OTHER = Account.from_key("0x" + "55" * 32)
TENANT = f"wallet-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def env(stack: StackConfig) -> dict[str, str]:
    return gateway_env(stack, OMNIHUB_RATE_LIMIT_PER_MINUTE="100000")


@pytest.fixture(scope="module")
def api(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    logs: Path = tmp_path_factory.mktemp("wallet")
    with running_processor(env, logs), running_api(env, logs) as url:
        yield url


@pytest.fixture(scope="module")
def admin(api: str, env: dict[str, str]) -> CliKey:
    return cli_key(env, TENANT, "admin")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def nonce(c: httpx.AsyncClient, key: str) -> dict[str, Any]:
    r = await c.post("/api/v1/auth/wallet/nonce", headers=bearer(key))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def signed(issued: dict[str, Any], signer: Any = WALLET, **changes: Any) -> dict[str, str]:
    fields: dict[str, Any] = {
        "domain": issued["domain"],
        "address": WALLET.address,
        "statement": issued["statement"],
        "uri": issued["uri"],
        "chain_id": issued["chain_id"],
        "nonce": issued["nonce"],
        "issued_at": datetime.now(UTC).replace(microsecond=0),
        "expiration_time": datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=2),
    }
    text = render(SiweMessage(**{**fields, **changes}))
    signature = Account.sign_message(encode_defunct(text=text), signer.key).signature
    return {"message": text, "signature": "0x" + signature.hex().removeprefix("0x")}


async def control_events(env: dict[str, str]) -> list[Event]:
    codec = EventCodec(SchemaRegistry.from_dir(REPO_ROOT / "schemas"))
    topic = f"{env['OMNIHUB_TOPIC_PREFIX']}.control.v1"
    return [rec.event async for rec in read_log(env["OMNIHUB_KAFKA_BOOTSTRAP"], codec, [topic])]


async def test_a_signed_message_links_the_wallet_once(
    api: str, env: dict[str, str], admin: CliKey
) -> None:
    async with httpx.AsyncClient(base_url=api, timeout=30) as c:
        issued = await nonce(c, admin.key)
        body = signed(issued)
        r = await c.post("/api/v1/auth/wallet/verify", json=body, headers=bearer(admin.key))
        assert r.status_code == 200, r.text
        assert r.json()["address"] == WALLET.address
        assert r.json()["tenant_id"] == TENANT
        replay = await c.post("/api/v1/auth/wallet/verify", json=body, headers=bearer(admin.key))
    assert replay.status_code == 401
    assert replay.headers["content-type"] == "application/problem+json"
    assert replay.json()["reason"] == "replayed"
    linked = [e for e in await control_events(env) if isinstance(e, WalletLinked)]
    assert [(e.envelope.tenant_id, e.address, e.siwe_nonce) for e in linked] == [
        (TENANT, WALLET.address, issued["nonce"])
    ]
    assert linked[0].envelope.event_id == r.json()["event_id"]


@pytest.mark.parametrize(
    "changes,reason,status",
    [
        ({"domain": "evil.example"}, "foreign_domain", 401),
        ({"uri": "https://evil.example/login"}, "foreign_uri", 401),
        ({"chain_id": 1}, "wrong_chain", 401),
        ({"signer": OTHER}, "wrong_signer", 401),
        ({"expiration_time": datetime(2020, 1, 1, tzinfo=UTC)}, "expired", 401),
        ({"nonce": "neverissued0000"}, "nonce_unknown", 401),
    ],
)
async def test_refusals_are_problem_details_with_an_audit_fact(
    api: str,
    env: dict[str, str],
    admin: CliKey,
    changes: dict[str, Any],
    reason: str,
    status: int,
) -> None:
    async with httpx.AsyncClient(base_url=api, timeout=30) as c:
        issued = await nonce(c, admin.key)
        signer = changes.pop("signer", WALLET)
        body = signed(issued, signer, **changes)
        r = await c.post("/api/v1/auth/wallet/verify", json=body, headers=bearer(admin.key))
    assert r.status_code == status, r.text
    assert r.json()["reason"] == reason
    assert r.json()["type"].endswith("siwe-" + reason.replace("_", "-"))
    await _audited(env, reason)


async def test_a_malformed_message_is_a_400(api: str, env: dict[str, str], admin: CliKey) -> None:
    async with httpx.AsyncClient(base_url=api, timeout=30) as c:
        body = {"message": "please let me in", "signature": "0x00"}
        r = await c.post("/api/v1/auth/wallet/verify", json=body, headers=bearer(admin.key))
    assert (r.status_code, r.json()["reason"]) == (400, "malformed")
    await _audited(env, "malformed")


async def test_a_key_without_the_scope_cannot_link(api: str, env: dict[str, str]) -> None:
    reader = cli_key(env, TENANT, "read")
    async with httpx.AsyncClient(base_url=api, timeout=30) as c:
        r = await c.post("/api/v1/auth/wallet/nonce", headers=bearer(reader.key))
    assert r.status_code == 403


async def _audited(env: dict[str, str], reason: str) -> None:
    for _ in range(30):
        facts = [
            e
            for e in await control_events(env)
            if isinstance(e, AuditFactObserved)
            and e.action == "wallet.link"
            and e.details.get("reason") == reason
        ]
        if facts:
            assert facts[0].envelope.tenant_id == TENANT
            assert facts[0].outcome == "failure"
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"no audit fact for the refusal {reason}")


async def test_unlinking_appends_wallet_unlinked(
    api: str, env: dict[str, str], admin: CliKey
) -> None:
    lower = WALLET.address.lower()
    async with httpx.AsyncClient(base_url=api, timeout=30) as c:
        r = await c.delete(f"/api/v1/auth/wallet/{lower}?reason=lost", headers=bearer(admin.key))
        bad = await c.delete("/api/v1/auth/wallet/0x1234", headers=bearer(admin.key))
    assert r.status_code == 200, r.text
    assert r.json()["address"] == WALLET.address
    assert bad.status_code == 422
    unlinked = [e for e in await control_events(env) if isinstance(e, WalletUnlinked)]
    # The reason is the tenant's words: sealed in the log with the tenant's key (the
    # address stays clear: the tier check matches it against the chain's events).
    assert [(e.envelope.tenant_id, e.address) for e in unlinked] == [(TENANT, WALLET.address)]
    assert unlinked[0].reason.startswith(SEALED)
    settings = settings_of(env)
    privacy = privacy_for(settings, SchemaRegistry.from_dir(settings.schemas_dir))
    try:
        opened = await privacy.open(unlinked)
    finally:
        await privacy.close()
    assert [e.reason for e in opened] == ["lost"]
