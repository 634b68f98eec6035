"""A tenant's effective tier and entitlements, folded from its events, with their source.

Three kinds of fact count: the tenant's subscription (``subscription_changed``), the
wallets it linked (``wallet_linked`` / ``wallet_unlinked``) and the membership tokens
on chain (``membership_changed``, one state per token, the latest wins, a reorg's
retraction included). At a given time the tenant gets the best of:

- its subscription's tier, until the subscription expires;
- each unexpired, unrevoked membership held by one of its linked wallets;
- ``free``, always.

So an expired membership falls back to the subscription's tier, or to free. Pure: the
projection that serves ``GET /api/v1/tenant`` and the gateway's checks fold with this.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from domain import ids
from domain.events import (
    Event,
    MembershipChanged,
    SubscriptionChanged,
    WalletLinked,
    WalletUnlinked,
)
from domain.tiers import TIERS, Entitlement, TierName, tier

DEFAULT_SOURCE = "default"
SUBSCRIPTION_SOURCE = "subscription"


@dataclass(frozen=True)
class Subscription:
    """The operator-set tier and until when it holds (None: no end)."""

    tier: TierName
    expires_at: datetime | None
    event_id: str


@dataclass(frozen=True)
class Token:
    """One membership token as its latest ``membership_changed`` left it."""

    chain_id: int
    contract: str
    token_id: str
    holder: str  # lower-case address; "" once revoked
    tier: TierName
    expires_at: datetime
    event_id: str

    @property
    def source(self) -> str:
        """How an entitlement names this token as its source."""
        return f"membership:{self.chain_id}:{self.contract}:{self.token_id}"


@dataclass(frozen=True)
class TenantTiers:
    """What the fold keeps for one tenant."""

    tenant_id: str
    subscription: Subscription | None = None
    wallets: frozenset[str] = frozenset()  # lower-case addresses
    tokens: Mapping[str, Token] = field(default_factory=dict)


@dataclass(frozen=True)
class Grant:
    """One entitlement's value and where it comes from."""

    value: Entitlement
    source: str


@dataclass(frozen=True)
class Effective:
    """The tier a tenant has at ``at``, each entitlement with its source."""

    tenant_id: str
    tier: TierName
    source: str
    until: datetime | None  # when this source ends (then evaluate again); None: no end
    entitlements: Mapping[str, Grant]
    at: datetime


def evolve(state: TenantTiers, event: Event) -> TenantTiers:
    """The state after ``event``; events of other tenants (but memberships) change nothing."""
    if isinstance(event, MembershipChanged):
        return _with_token(state, event)
    if event.envelope.tenant_id != state.tenant_id:
        return state
    if isinstance(event, SubscriptionChanged):
        subscription = Subscription(
            tier(event.tier).name, event.expires_at, event.envelope.event_id
        )
        return replace(state, subscription=subscription)
    if isinstance(event, WalletLinked):
        return replace(state, wallets=state.wallets | {event.address.lower()})
    if isinstance(event, WalletUnlinked):
        return replace(state, wallets=state.wallets - {event.address.lower()})
    return state


def _with_token(state: TenantTiers, event: MembershipChanged) -> TenantTiers:
    key = f"{event.chain_id}:{event.contract.lower()}:{event.token_id}"
    token = Token(
        chain_id=event.chain_id,
        contract=event.contract.lower(),
        token_id=event.token_id,
        holder="" if event.change == "revoked" else event.holder.lower(),
        tier=tier(event.tier).name,
        expires_at=event.expires_at,
        event_id=event.envelope.event_id,
    )
    return replace(state, tokens={**state.tokens, key: token})


def fold(tenant_id: str, events: Iterable[Event]) -> TenantTiers:
    """``evolve`` over ``events`` in log order, from nothing."""
    state = TenantTiers(tenant_id)
    for event in events:
        state = evolve(state, event)
    return state


def effective(state: TenantTiers, at: datetime, default: TierName = "free") -> Effective:
    """The best tier the tenant holds at ``at``, and its entitlements with their source;
    ``default`` is what every tenant has (free, unless a deployment says otherwise)."""
    candidates: list[tuple[TierName, str, datetime | None]] = [(default, DEFAULT_SOURCE, None)]
    sub = state.subscription
    if sub is not None and (sub.expires_at is None or at < sub.expires_at):
        candidates.append((sub.tier, SUBSCRIPTION_SOURCE, sub.expires_at))
    for token in state.tokens.values():
        if token.holder and token.holder in state.wallets and at < token.expires_at:
            candidates.append((token.tier, token.source, token.expires_at))
    name, source, until = max(candidates, key=_preference)
    grants = {k: Grant(v, source) for k, v in TIERS[name].entitlements().items()}
    return Effective(state.tenant_id, name, source, until, grants, at)


def _preference(candidate: tuple[TierName, str, datetime | None]) -> tuple[int, float, str]:
    """Higher rank first; on a tie the longest-lasting source; then by name, for stability."""
    name, source, until = candidate
    lasting = float("inf") if until is None else until.timestamp()
    return TIERS[name].rank, lasting, source


def subscription_change(
    tenant_id: str,
    tier_name: str,
    *,
    actor: str,
    reason: str = "",
    expires_at: datetime | None = None,
    request_id: str,
) -> SubscriptionChanged:
    """A ``subscription_changed`` for ``tenant_id`` (``ValueError`` for an unknown tier).

    ``request_id`` makes the id: the same request retried is the same fact.
    """
    if expires_at is not None and expires_at.tzinfo is None:
        raise ValueError("expires_at must be timezone-aware")
    return SubscriptionChanged(
        envelope=ids.envelope(
            SubscriptionChanged,
            run_id=f"tier-{tenant_id}",
            tenant_id=tenant_id,
            actor=actor,
            correlation_id=request_id,
            discriminator=(request_id,),
        ),
        tier=tier(tier_name).name,
        reason=reason,
        expires_at=expires_at,
    )
