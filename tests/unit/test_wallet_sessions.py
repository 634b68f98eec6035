"""Wallet sessions: which tenant a wallet signs in to, what it may do, and the recheck that
ends its session once it is unlinked (with a scripted directory: no I/O); and the open
sign-in routes' per-client limit."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from api.security.principal import Authenticator
from api.security.sessions import Session, SessionStore
from api.security.wallet_sessions import (
    WALLET_SCOPES,
    WalletChoiceRefused,
    WalletDirectory,
    choose_tenant,
)
from apps.api import create_app
from domain import scopes
from omnihub.lazy import Lazy
from omnihub.settings import Settings

ADDRESS = "0x19E7E376E7C213B7E7e7e46cc70A5dD086DAff2A"


def test_the_one_linked_tenant_is_chosen() -> None:
    assert choose_tenant(["acme"], ()) == "acme"


def test_an_unlinked_wallet_is_refused() -> None:
    with pytest.raises(WalletChoiceRefused) as refused:
        choose_tenant([], ())
    assert refused.value.reason == "not_linked" and refused.value.tenants == []


def test_a_wallet_of_several_tenants_must_name_one() -> None:
    with pytest.raises(WalletChoiceRefused) as refused:
        choose_tenant(["zeta", "acme"], ())
    assert refused.value.reason == "ambiguous" and refused.value.tenants == ["acme", "zeta"]
    assert choose_tenant(["zeta", "acme"], ("urn:omnihub:tenant:zeta",)) == "zeta"


@pytest.mark.parametrize(
    "resources",
    [("urn:omnihub:tenant:other",), ("urn:omnihub:tenant:acme", "urn:omnihub:tenant:zeta")],
)
def test_a_named_tenant_must_be_one_linked_and_alone(resources: tuple[str, ...]) -> None:
    with pytest.raises(WalletChoiceRefused) as refused:
        choose_tenant(["acme", "zeta"], resources)
    assert refused.value.reason == "not_linked_to_tenant"


def test_a_wallet_reads_and_approves_but_never_writes() -> None:
    assert scopes.grants(WALLET_SCOPES, "runs:read")
    assert scopes.grants(WALLET_SCOPES, "tenant:read")
    assert scopes.grants(WALLET_SCOPES, "approvals:decide")
    for needed in ("goals:write", "runs:cancel", "admin", "wallets:link", "keys:admin"):
        assert not scopes.grants(WALLET_SCOPES, needed), needed


class ScriptedDirectory(WalletDirectory):
    """The links the test sets; counts the reads a real one would make of Postgres."""

    def __init__(self, ttl_s: float, clock: Any) -> None:
        super().__init__(Lazy(self._no_pool), "public", ttl_s, clock)
        self.links: dict[str, list[str]] = {}
        self.reads = 0

    @staticmethod
    async def _no_pool() -> Any:
        raise AssertionError("no Postgres in unit tests")

    async def _read(self, lowered: str) -> list[str]:
        self.reads += 1
        return list(self.links.get(lowered, []))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_the_directory_is_read_at_most_once_per_ttl_and_forgets_on_demand() -> None:
    clock = Clock()
    directory = ScriptedDirectory(2.0, clock)
    directory.links[ADDRESS.lower()] = ["acme"]
    assert await directory.tenants_of(ADDRESS) == ["acme"]
    directory.links[ADDRESS.lower()] = []
    assert await directory.tenants_of(ADDRESS.lower()) == ["acme"]  # cached, any case
    assert directory.reads == 1
    clock.now = 2.5
    assert await directory.tenants_of(ADDRESS) == []
    directory.links[ADDRESS.lower()] = ["acme"]
    directory.forget(ADDRESS)
    assert await directory.tenants_of(ADDRESS) == ["acme"]
    assert directory.reads == 3


async def test_a_wallet_session_stands_for_the_wallet_until_it_is_unlinked() -> None:
    clock = Clock()
    directory = ScriptedDirectory(2.0, clock)
    directory.links[ADDRESS.lower()] = ["acme"]
    auth = Authenticator(lookup=None, secret_key="s", cache_ttl_s=0)  # type: ignore[arg-type]
    store = SessionStore(redis=None, authenticator=auth, ttl_s=60, prefix="t", wallets=directory)  # type: ignore[arg-type]
    session = Session("sid", ADDRESS, "acme", "csrf", kind="wallet")

    result = await store.recheck(session)
    assert result.principal is not None
    assert result.principal.actor == f"wallet:{ADDRESS}"
    assert result.principal.tenant_id == "acme" and result.principal.scopes == WALLET_SCOPES

    directory.links[ADDRESS.lower()] = ["zeta"]  # unlinked from acme, linked elsewhere
    assert (await store.recheck(session)).principal is not None  # within the cache's 2 s
    clock.now = 2.1
    refused = await store.recheck(session)
    assert refused.principal is None and refused.reason == "unlinked"
    assert refused.tenant_id == "acme"


class SigninRedis:
    """Only what the sign-in nonce route uses: its counter and the nonce's SET NX."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.nonces: dict[str, str] = {}

    def register_script(self, _: str) -> Any:
        return None

    async def incr(self, key: str) -> int:
        self.counts[key] = self.counts.get(key, 0) + 1
        return self.counts[key]

    async def expire(self, key: str, seconds: int) -> bool:
        return True

    async def set(self, key: str, value: str, nx: bool, ex: int) -> bool:
        return self.nonces.setdefault(key, value) == value


async def test_the_open_sign_in_routes_are_limited_per_client() -> None:
    app = create_app(Settings(secret_key="unit", wallet_signin_per_minute=2))
    app.state.omnihub.redis = redis = SigninRedis()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answers = [
            await client.post("/dashboard/signin/wallet/nonce", json={"address": ADDRESS.lower()})
            for _ in range(3)
        ]
        cross = await client.post(
            "/dashboard/signin/wallet/nonce", headers={"Origin": "https://evil.example"}
        )
    assert [r.status_code for r in answers] == [200, 200, 429]
    assert answers[0].json()["address"] == ADDRESS
    assert answers[0].json()["statement"] == "Sign in to the OmniHub dashboard."
    assert answers[2].json()["type"].endswith("/signin-rate-limited")
    assert 1 <= int(answers[2].headers["retry-after"]) <= 60
    assert len(redis.nonces) == 2 and all(v == "issued:_signin" for v in redis.nonces.values())
    assert cross.status_code == 403  # refused before it counts or issues anything
