"""The tenant's tier as the gateway checks it: the tenant projection, cached briefly.

:class:`TierReader` reads a tenant's stored facts (:mod:`projections.tenant_tiers`) at
most once per ``ttl_s`` per API process and evaluates
:func:`domain.entitlements.effective` on every call, with the current time. So a tier
change is honoured within ``ttl_s`` of the gateway folding it, with no restart, and an
expiry at its time, even from the cache. Postgres not answering with nothing cached is
:class:`TiersUnavailable` (the routes answer 503: an entitlement that cannot be read is
not granted).

:func:`refuse` is how every entitlement refusal looks: an audit fact (``entitlement``,
denied, naming it) recorded before a 402 or 403 problem naming it too.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Protocol

import asyncpg

from api.problems import Problem
from api.security.audit import AuditSink, audit_fact
from api.security.principal import Principal
from api.security.tenancy import owner_connection
from domain.entitlements import Effective, TenantTiers, effective
from domain.tiers import TierName
from omnihub.lazy import Lazy
from omnihub.single_flight import SingleFlight
from projections.tenant_tiers import load_state


class TiersUnavailable(Exception):
    """The tenant projection could not be read and nothing usable was cached."""


FactsLoader = Callable[[str], Awaitable[TenantTiers]]


class Tiers(Protocol):
    """Where the gateway reads a tenant's tier (:class:`TierReader`; a fixed one in
    unit tests)."""

    async def effective(self, tenant_id: str) -> Effective:
        """The tier ``tenant_id`` has now; raises :class:`TiersUnavailable`."""
        ...


def postgres_facts(pool: Lazy[asyncpg.Pool], schema: str) -> FactsLoader:
    """Load a tenant's facts from the tenant projection."""

    async def load(tenant_id: str) -> TenantTiers:
        try:
            async with owner_connection(await pool.get(), schema) as conn:
                return await load_state(conn, tenant_id)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise TiersUnavailable(str(exc)) from exc

    return load


class TierReader:
    """Each tenant's facts, at most ``ttl_s`` old; the tier evaluated now."""

    def __init__(
        self,
        load: FactsLoader,
        ttl_s: float,
        default: TierName = "free",
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._load = load
        self.ttl_s = ttl_s
        self.default = default
        self._clock = clock
        self._now = now
        self._cached: dict[str, tuple[float, TenantTiers]] = {}  # tenant -> (expires, facts)
        self._flights: SingleFlight[str, TenantTiers] = SingleFlight()

    async def facts(self, tenant_id: str) -> TenantTiers:
        """``tenant_id``'s stored facts, at most ``ttl_s`` old. Concurrent misses share
        one read (:mod:`omnihub.single_flight`)."""
        asked_at = self._clock()  # before the read, as CachedSwitches does
        hit = self._cached.get(tenant_id)
        if hit is not None and asked_at < hit[0]:
            return hit[1]
        return await self._flights.load(
            tenant_id, asked_at, self.ttl_s, lambda: self._read(tenant_id, asked_at)
        )

    async def _read(self, tenant_id: str, asked_at: float) -> TenantTiers:
        state = await self._load(tenant_id)
        self._cached[tenant_id] = (asked_at + self.ttl_s, state)
        return state

    async def effective(self, tenant_id: str) -> Effective:
        """The tier ``tenant_id`` has now, each entitlement with its source."""
        return effective(await self.facts(tenant_id), self._now(), self.default)


def unavailable(exc: TiersUnavailable) -> Problem:
    """The 503 for a tier that cannot be read."""
    return Problem(
        503,
        "tiers-unavailable",
        f"cannot read the tenant's tier right now: {exc}",
        headers={"Retry-After": "5"},
    )


async def refuse(
    audit: AuditSink,
    p: Principal,
    tier: Effective,
    entitlement: str,
    detail: str,
    *,
    resource: str,
    status: int = 402,
    extra: Mapping[str, object] | None = None,
) -> Problem:
    """Record the refusal (before answering) and return its problem, naming the
    entitlement, the tier and where it comes from."""
    grant = tier.entitlements[entitlement]
    await audit.record(
        audit_fact(
            p.tenant_id,
            "entitlement",
            entitlement,
            "denied",
            subject=p.actor,
            resource=resource,
            details={"tier": tier.tier, "source": grant.source, "allowed": str(grant.value)},
        )
    )
    problem = Problem(
        status,
        "entitlement-" + entitlement.replace("_", "-"),
        detail,
        entitlement=entitlement,
        tier=tier.tier,
        source=grant.source,
        allowed=_jsonable(grant.value),
    )
    problem.extensions.update(extra or {})
    return problem


def _jsonable(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value
