"""Dashboard sessions that stand for a wallet: who it is, for which tenant, what it may do.

A wallet that proved itself with a signed SIWE message (``api/dashboard/wallet_signin.py``)
signs in as the principal ``wallet:<EIP-55 address>`` of the tenant it is *linked* to
(``wallet_linked`` / ``wallet_unlinked``, folded by the gateway into ``tenant_wallets``).
Every request made with such a session asks :class:`WalletDirectory` again whether the
wallet is still linked to that tenant, at most ``ttl_s`` (``OMNIHUB_AUTH_CACHE_TTL_S``,
2 s) old: an unlinked wallet's sessions stop working within seconds of the gateway
folding the unlink, as a revoked key's do.

The scopes are fixed and few (:data:`WALLET_SCOPES`): ``read`` (every page's reads) and
``approvals:decide``, because approvers are identities, not free text, and a linked
wallet is one the tenant's admin vouched for by linking it. No ``write`` (no goals, no
cancels) and no ``admin``: those stay with keys, which can be scoped and rotated.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import asyncpg

from api.security.principal import UNAUTHENTICATED_TENANT, AuthResult, Principal
from api.security.tenancy import owner_connection
from omnihub.lazy import Lazy

WALLET_SCOPES = frozenset({"read", "approvals:decide"})
"""What a wallet session may do (documented in README.md, dashboard security)."""

TENANT_RESOURCE = "urn:omnihub:tenant:"
"""A signed ``Resources`` entry naming the tenant to sign in to, for a wallet linked to
several."""


class WalletChoiceRefused(Exception):
    """The wallet names no tenant it can sign in to; ``reason`` says why."""

    def __init__(self, reason: str, detail: str, tenants: Sequence[str] = ()) -> None:
        super().__init__(detail)
        self.reason = reason  # not_linked, ambiguous, not_linked_to_tenant
        self.detail = detail
        self.tenants = list(tenants)


def choose_tenant(linked: Sequence[str], resources: Sequence[str]) -> str:
    """The tenant a wallet linked to ``linked`` signs in to.

    The one tenant it is linked to; or, when linked to several, the one its signed
    message names as a resource ``urn:omnihub:tenant:<id>``. Raises
    :class:`WalletChoiceRefused` otherwise.
    """
    asked = [r[len(TENANT_RESOURCE) :] for r in resources if r.startswith(TENANT_RESOURCE)]
    if not linked:
        raise WalletChoiceRefused("not_linked", "this wallet is not linked to any tenant")
    if asked:
        if len(asked) == 1 and asked[0] in linked:
            return asked[0]
        raise WalletChoiceRefused(
            "not_linked_to_tenant", "this wallet is not linked to the tenant the message names"
        )
    if len(linked) > 1:
        raise WalletChoiceRefused(
            "ambiguous",
            "this wallet is linked to several tenants: choose one and sign again",
            sorted(linked),
        )
    return linked[0]


def wallet_principal(address: str, tenant_id: str) -> Principal:
    """The principal a wallet session stands for (actor ``wallet:<address>``)."""
    return Principal(f"wallet:{address}", address, tenant_id, WALLET_SCOPES, kind="wallet")


class WalletDirectory:
    """Which tenants a wallet is linked to, from ``tenant_wallets``, at most ``ttl_s`` old."""

    def __init__(
        self,
        pool: Lazy[asyncpg.Pool],
        schema: str,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pool = pool
        self._schema = schema
        self._ttl = ttl_s
        self._clock = clock
        self._cache: dict[str, tuple[float, list[str]]] = {}

    async def tenants_of(self, address: str) -> list[str]:
        """The tenants ``address`` (any case) is linked to now."""
        lowered = address.lower()
        asked_at = self._clock()
        hit = self._cache.get(lowered)
        if hit is not None and asked_at < hit[0]:
            return hit[1]
        tenants = await self._read(lowered)
        if len(self._cache) > 10_000:
            self._cache.clear()  # bounded, as the key cache is
        if self._ttl > 0:
            self._cache[lowered] = (asked_at + self._ttl, tenants)
        return tenants

    async def _read(self, lowered: str) -> list[str]:
        async with owner_connection(await self._pool.get(), self._schema) as conn:
            rows = await conn.fetch(
                "SELECT tenant_id FROM tenant_wallets WHERE address = $1 ORDER BY tenant_id",
                lowered,
            )
        return [r["tenant_id"] for r in rows]

    def forget(self, address: str) -> None:
        """Drop a cached answer (after this process saw the wallet linked)."""
        self._cache.pop(address.lower(), None)

    async def recheck(self, address: str, tenant_id: str) -> AuthResult:
        """The wallet session's principal, if the wallet is still linked to the tenant."""
        subject = f"wallet:{address}"
        if tenant_id not in await self.tenants_of(address):
            tenant = tenant_id or UNAUTHENTICATED_TENANT
            return AuthResult(None, "unlinked", tenant, subject)
        return AuthResult(wallet_principal(address, tenant_id), "ok", tenant_id, subject)
