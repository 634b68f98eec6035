"""Wallet sign-in against the test stack's real Redis: single use, replay, expiry, races."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from redis.asyncio import Redis

from api.security.wallet import RedisNonceStore, WalletSignIn
from domain.siwe import Expectation, SiweMessage, SiweRefused, render
from omnihub.settings import get_settings

EXPECTED = Expectation(domain="127.0.0.1:8000", uri="http://127.0.0.1:8000", chain_id=31337)
WALLET = Account.from_key("0x" + "33" * 32)


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(get_settings().redis_url)
    yield client
    await client.aclose()


def store(redis: Redis, ttl_s: int = 300) -> RedisNonceStore:
    return RedisNonceStore(redis, ttl_s=ttl_s, prefix=f"test:siwe:{uuid.uuid4().hex}:")


def signed(nonce: str, now: datetime) -> tuple[str, str]:
    text = render(
        SiweMessage(
            domain=EXPECTED.domain,
            address=WALLET.address,
            uri=EXPECTED.uri,
            chain_id=EXPECTED.chain_id,
            nonce=nonce,
            issued_at=now.replace(microsecond=0),
        )
    )
    signature = Account.sign_message(encode_defunct(text=text), WALLET.key).signature
    return text, "0x" + signature.hex().removeprefix("0x")


async def test_a_nonce_signs_in_once_and_a_replay_is_refused(redis: Redis) -> None:
    signin = WalletSignIn(store(redis), EXPECTED)
    nonce = await signin.nonces.issue("acme")
    text, signature = signed(nonce, datetime.now(UTC))
    verified = await signin.verify(text, signature, "acme")
    assert verified.address == WALLET.address
    with pytest.raises(SiweRefused) as refused:
        await signin.verify(text, signature, "acme")
    assert refused.value.reason == "replayed"


async def test_a_nonce_never_issued_or_issued_to_another_tenant_is_refused(redis: Redis) -> None:
    signin = WalletSignIn(store(redis), EXPECTED)
    text, signature = signed("neverissued42", datetime.now(UTC))
    with pytest.raises(SiweRefused) as refused:
        await signin.verify(text, signature, "acme")
    assert refused.value.reason == "nonce_unknown"
    nonce = await signin.nonces.issue("globex")
    text, signature = signed(nonce, datetime.now(UTC))
    with pytest.raises(SiweRefused) as refused:
        await signin.verify(text, signature, "acme")
    assert refused.value.reason == "nonce_unknown"
    assert (await signin.verify(text, signature, "globex")).nonce == nonce


async def test_a_nonce_expires(redis: Redis) -> None:
    signin = WalletSignIn(store(redis, ttl_s=1), EXPECTED)
    nonce = await signin.nonces.issue("acme")
    await asyncio.sleep(1.2)
    text, signature = signed(nonce, datetime.now(UTC))
    with pytest.raises(SiweRefused) as refused:
        await signin.verify(text, signature, "acme")
    assert refused.value.reason == "nonce_unknown"


async def test_a_refused_message_does_not_use_up_the_nonce(redis: Redis) -> None:
    signin = WalletSignIn(store(redis), EXPECTED)
    nonce = await signin.nonces.issue("acme")
    text, signature = signed(nonce, datetime.now(UTC) - timedelta(minutes=10))
    with pytest.raises(SiweRefused) as refused:
        await signin.verify(text, signature, "acme")
    assert refused.value.reason == "expired"
    text, signature = signed(nonce, datetime.now(UTC))
    assert (await signin.verify(text, signature, "acme")).nonce == nonce


async def test_of_concurrent_verifications_with_one_nonce_exactly_one_wins(redis: Redis) -> None:
    clients = [Redis.from_url(get_settings().redis_url) for _ in range(4)]
    prefix = f"test:siwe:{uuid.uuid4().hex}:"
    stores = [RedisNonceStore(c, prefix=prefix) for c in clients]
    try:
        nonce = await stores[0].issue("acme")
        answers = await asyncio.gather(*(stores[i % 4].consume(nonce, "acme") for i in range(40)))
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    assert sorted(set(answers)) == ["ok", "replayed"]
    assert answers.count("ok") == 1
