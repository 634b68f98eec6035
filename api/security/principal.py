"""Who is calling: API key authentication against the keys projection, with a short cache.

Revocation semantics: a revocation is effective in the API process that made it as soon
as the revoke call returns (it waits for the projection and drops its cache entry), and
in every other API process within ``auth_cache_ttl_s`` (2 s by default), the lifetime of
a cached lookup. Expiry (including a rotated key's grace period) is checked on every
request against the clock, never cached.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from api.security import key_material
from omnihub.single_flight import SingleFlight
from projections.keys import StoredKey

UNAUTHENTICATED_TENANT = "_unauthenticated"  # never a real tenant: those start alphanumeric


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a key (or a trusted device) of one tenant holding some
    scopes."""

    key_id: str
    prefix: str
    tenant_id: str
    scopes: frozenset[str]
    kind: str = "api-key"  # or "device": a request signed by a trusted device's key

    @property
    def actor(self) -> str:
        """How events name this caller."""
        return f"{self.kind}:{self.prefix}"


@dataclass(frozen=True)
class AuthResult:
    """A principal, or why there is none and which tenant the attempt concerned."""

    principal: Principal | None
    reason: str  # ok, missing, malformed, unknown, mismatch, revoked, expired
    tenant_id: str
    subject: str


class KeyLookup(Protocol):
    """Finds a stored key by its public prefix."""

    async def by_prefix(self, prefix: str) -> StoredKey | None:
        """The key with ``prefix``, of any tenant, or None."""
        ...


class Authenticator:
    """Checks presented keys against :class:`KeyLookup`, caching lookups briefly."""

    def __init__(
        self,
        lookup: KeyLookup,
        secret_key: str,
        cache_ttl_s: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._lookup = lookup
        self._secret = secret_key
        self._ttl = cache_ttl_s
        self._clock = clock
        self._cache: dict[str, tuple[float, StoredKey | None]] = {}
        self._flights: SingleFlight[str, StoredKey | None] = SingleFlight()

    def forget(self, prefix: str) -> None:
        """Drop a cached lookup (after this process revoked or rotated the key)."""
        self._cache.pop(prefix, None)
        self._flights.forget(prefix)

    async def _find(self, prefix: str) -> StoredKey | None:
        now = time.monotonic()
        hit = self._cache.get(prefix)
        if hit is not None and hit[0] > now:
            return hit[1]
        # Concurrent misses share one lookup (omnihub.single_flight).
        return await self._flights.load(prefix, now, self._ttl, lambda: self._read(prefix, now))

    async def _read(self, prefix: str, now: float) -> StoredKey | None:
        stored = await self._lookup.by_prefix(prefix)
        if len(self._cache) > 10_000:
            self._cache.clear()  # bounded: garbage prefixes must not grow memory
        if self._ttl > 0:
            self._cache[prefix] = (now + self._ttl, stored)
        return stored

    async def authenticate(self, presented: str | None) -> AuthResult:
        """The principal for ``presented`` (the raw key), or the reason it fails."""
        if not presented:
            return AuthResult(None, "missing", UNAUTHENTICATED_TENANT, "anonymous")
        prefix = key_material.parse_prefix(presented)
        if prefix is None:
            return AuthResult(None, "malformed", UNAUTHENTICATED_TENANT, "anonymous")
        subject = f"api-key:{prefix}"
        stored = await self._find(prefix)
        if stored is None:
            return AuthResult(None, "unknown", UNAUTHENTICATED_TENANT, subject)
        if not key_material.matches(self._secret, presented, stored.key_hash):
            return AuthResult(None, "mismatch", stored.tenant_id, subject)
        if stored.revoked_at is not None:
            return AuthResult(None, "revoked", stored.tenant_id, subject)
        if not stored.usable_at(self._clock()):
            return AuthResult(None, "expired", stored.tenant_id, subject)
        principal = Principal(stored.key_id, prefix, stored.tenant_id, frozenset(stored.scopes))
        return AuthResult(principal, "ok", stored.tenant_id, subject)

    async def recheck(self, prefix: str) -> AuthResult:
        """The principal of a key proven earlier (a dashboard session), if still usable."""
        subject = f"api-key:{prefix}"
        stored = await self._find(prefix)
        if stored is None or stored.revoked_at is not None:
            tenant = UNAUTHENTICATED_TENANT if stored is None else stored.tenant_id
            return AuthResult(None, "revoked", tenant, subject)
        if not stored.usable_at(self._clock()):
            return AuthResult(None, "expired", stored.tenant_id, subject)
        principal = Principal(stored.key_id, prefix, stored.tenant_id, frozenset(stored.scopes))
        return AuthResult(principal, "ok", stored.tenant_id, subject)
