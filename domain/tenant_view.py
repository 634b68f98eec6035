"""What ``GET /api/v1/tenant`` shows of a tenant's tier, decided purely.

:func:`domain.entitlements.effective` picks the best source; :func:`sources` lists every
source the tenant has at a time, the expired ones included, so a tenant sees why its
tier is what it is (and what it falls back to when the best one ends).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from domain.entitlements import DEFAULT_SOURCE, SUBSCRIPTION_SOURCE, TenantTiers
from domain.tiers import TierName


@dataclass(frozen=True)
class Source:
    """One thing that gives the tenant a tier, and whether it counts at the time."""

    source: str
    tier: TierName
    expires_at: datetime | None
    active: bool
    wallet: str | None = None  # the linked wallet holding a membership


def sources(state: TenantTiers, at: datetime, default: TierName = "free") -> list[Source]:
    """Every source of ``state`` at ``at``: the default tier always, the subscription,
    each token a linked wallet holds (revoked tokens hold nothing and are left out)."""
    found = [Source(DEFAULT_SOURCE, default, None, True)]
    sub = state.subscription
    if sub is not None:
        active = sub.expires_at is None or at < sub.expires_at
        found.append(Source(SUBSCRIPTION_SOURCE, sub.tier, sub.expires_at, active))
    for key in sorted(state.tokens):
        token = state.tokens[key]
        if token.holder and token.holder in state.wallets:
            active = at < token.expires_at
            found.append(Source(token.source, token.tier, token.expires_at, active, token.holder))
    return found
