"""The demo's membership part: a wallet signs in, gets a pro membership on the local chain,
and the tenant's tier follows the chain.

Through the real routes: ``POST /api/v1/auth/wallet/nonce`` and ``/verify`` (SIWE,
signed here with a fresh eth-account key) link the wallet to the tenant; the contract
(``contracts/membership.py``) mints it a pro token from the node's dev account that
deployed it; the chain watcher appends ``membership_changed`` once the block has its
confirmations, and ``GET /api/v1/tenant`` shows ``pro`` from ``membership:...``.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from omnihub.settings import Settings

DAYS_30 = 30 * 86400


async def wallet_tier(client: httpx.AsyncClient, settings: Settings, timeout_s: float = 60) -> bool:
    """Link a new wallet, mint it pro, and wait for the tenant's tier; True once it shows."""
    from eth_account import Account

    before = await client.get("/api/v1/tenant")
    if before.status_code != 200:
        print(f"GET /api/v1/tenant -> {before.status_code}: {before.text[:300]}")
        return False
    print(f"GET /api/v1/tenant -> tier {before.json()['tier']} from {before.json()['source']}")
    wallet = Account.create()
    if not await _sign_in(client, wallet):
        return False
    token = await asyncio.to_thread(_mint_pro, settings, wallet.address)
    print(f"minted membership token {token} (pro, 30 days) to {wallet.address} on the local chain")
    started = time.monotonic()
    shown = await _until_pro(client, token, timeout_s)
    if shown is None:
        print(f"(the tier did not change within {timeout_s:g}s: is the chain-watcher running?)")
        return False
    took = time.monotonic() - started
    print(f"GET /api/v1/tenant -> tier {shown['tier']} from {shown['source']} ({took:.1f}s later)")
    return True


async def _sign_in(client: httpx.AsyncClient, wallet: Any) -> bool:
    """Sign-In with Ethereum through the API: nonce, signed message, verify."""
    from eth_account import Account
    from eth_account.messages import encode_defunct

    from domain.siwe import SiweMessage, render

    r = await client.post("/api/v1/auth/wallet/nonce")
    if r.status_code != 200:
        print(f"POST /api/v1/auth/wallet/nonce -> {r.status_code}: {r.text[:300]}")
        return False
    issued = r.json()
    text = render(
        SiweMessage(
            domain=issued["domain"],
            address=wallet.address,
            uri=issued["uri"],
            chain_id=issued["chain_id"],
            nonce=issued["nonce"],
            issued_at=datetime.now(UTC).replace(microsecond=0),
            statement=issued["statement"],
        )
    )
    signature = Account.sign_message(encode_defunct(text=text), wallet.key).signature.hex()
    body = {"message": text, "signature": "0x" + signature.removeprefix("0x")}
    r = await client.post("/api/v1/auth/wallet/verify", json=body)
    print(f"POST /api/v1/auth/wallet/verify (SIWE, signed by the wallet) -> {r.status_code}")
    return r.status_code == 200


def _mint_pro(settings: Settings, holder: str) -> int:
    """Mint a pro membership to ``holder`` from the account that deployed the contract."""
    from contracts.deployment import connect, membership_target
    from contracts.membership import MembershipContract

    record_path = settings.state_dir / "chain" / "membership.json"
    address, _, record = membership_target(record_path, settings.membership_address)
    w3 = connect(settings.chain_rpc_url)
    owner = record.owner if record is not None else w3.eth.accounts[0]
    expires = int(w3.eth.get_block("latest")["timestamp"]) + DAYS_30
    return MembershipContract(w3, address).mint(holder, "pro", expires, owner)


async def _until_pro(
    client: httpx.AsyncClient, token: int, timeout_s: float
) -> dict[str, Any] | None:
    """The tenant once its tier is pro from membership ``token``, None after ``timeout_s``
    (a token of an earlier demo may give pro already: this one must be the source)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        r = await client.get("/api/v1/tenant")
        if r.status_code == 200:
            body: dict[str, Any] = r.json()
            source = str(body["source"])
            if (
                body["tier"] == "pro"
                and source.startswith("membership:")
                and (source.endswith(f":{token}"))
            ):
                return body
                return body
        await asyncio.sleep(0.5)
    return None
