"""Membership follows the chain, end to end: real API, gateway, chain watcher and Hardhat.

A tenant links a wallet (SIWE through the API). Sharing plan templates (a pro
entitlement) is refused on free; a pro token minted to the wallet on chain lifts it
within seconds, sourced from that token; revoking the token on chain takes it back.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from web3 import Web3

from contracts.deployment import connect
from contracts.membership import MembershipContract
from domain.siwe import SiweMessage, render
from infra import chain_service
from infra.launch import running_api
from infra.stack import StackConfig
from tests.e2e.gateway_stack import CliKey, cli_key, gateway_env, running_processor
from tests.saga_support import omnihub_process

TENANT = f"chain-{uuid.uuid4().hex[:8]}"
WALLET = Account.create()
SHARE = {"template": "say {WHAT}", "shared_with": ["*"]}


@pytest.fixture(scope="module")
def chain(stack: StackConfig) -> tuple[Web3, MembershipContract, int]:
    w3 = connect(chain_service.rpc_url(stack))
    membership, receipt = MembershipContract.deploy(w3, w3.eth.accounts[0])
    return w3, membership, int(receipt["blockNumber"])


@pytest.fixture(scope="module")
def env(stack: StackConfig, chain: tuple[Web3, MembershipContract, int]) -> dict[str, str]:
    _, membership, block = chain
    return gateway_env(
        stack,
        OMNIHUB_MEMBERSHIP_ADDRESS=membership.address,
        OMNIHUB_MEMBERSHIP_FROM_BLOCK=str(block),
        OMNIHUB_CHAIN_CONFIRMATIONS="1",
        OMNIHUB_CHAIN_POLL_S="0.3",
    )


@pytest.fixture(scope="module")
def api(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    logs: Path = tmp_path_factory.mktemp("chain-tier")
    watcher_env = {**env, "OMNIHUB_METRICS_PORT": "0"}
    with (
        running_processor(env, logs),
        omnihub_process(watcher_env, logs / "chain-watcher.log", "chain-watcher", "run"),
        running_api(env, logs) as url,
    ):
        yield url


@pytest.fixture(scope="module")
def admin(api: str, env: dict[str, str]) -> CliKey:
    return cli_key(env, TENANT, "admin")


async def link_wallet(c: httpx.AsyncClient) -> None:
    issued = (await c.post("/api/v1/auth/wallet/nonce")).json()
    text = render(
        SiweMessage(
            domain=issued["domain"],
            address=WALLET.address,
            uri=issued["uri"],
            chain_id=issued["chain_id"],
            nonce=issued["nonce"],
            issued_at=datetime.now(UTC).replace(microsecond=0),
        )
    )
    signature = Account.sign_message(encode_defunct(text=text), WALLET.key).signature.hex()
    body = {"message": text, "signature": "0x" + signature.removeprefix("0x")}
    r = await c.post("/api/v1/auth/wallet/verify", json=body)
    assert r.status_code == 200, r.text


async def until(c: httpx.AsyncClient, status: int, timeout_s: float = 30) -> float:
    """Seconds until sharing answers ``status``."""
    started = time.monotonic()
    while (r := await c.put("/api/v1/plan-templates/sharing", json=SHARE)).status_code != status:
        assert time.monotonic() - started < timeout_s, r.text
        await asyncio.sleep(0.3)
    return time.monotonic() - started


async def tenant(c: httpx.AsyncClient) -> dict[str, Any]:
    r = await c.get("/api/v1/tenant")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_a_membership_on_chain_grants_its_tier_and_its_revocation_takes_it_back(
    api: str, admin: CliKey, chain: tuple[Web3, MembershipContract, int]
) -> None:
    w3, membership, _ = chain
    owner = w3.eth.accounts[0]
    headers = {"Authorization": f"Bearer {admin.key}"}
    async with httpx.AsyncClient(base_url=api, headers=headers, timeout=30) as c:
        await link_wallet(c)
        refused = await c.put("/api/v1/plan-templates/sharing", json=SHARE)
        assert refused.status_code == 402, refused.text
        assert refused.json()["entitlement"] == "plan_template_sharing"

        expires = int(w3.eth.get_block("latest")["timestamp"]) + 30 * 86400
        token = await asyncio.to_thread(membership.mint, WALLET.address, "pro", expires, owner)
        await until(c, 202)
        body = await tenant(c)
        source = f"membership:{w3.eth.chain_id}:{membership.address.lower()}:{token}"
        assert (body["tier"], body["source"].lower()) == ("pro", source)

        await asyncio.to_thread(membership.revoke, token, owner)
        await until(c, 402)
        assert (await tenant(c))["tier"] == "free"
