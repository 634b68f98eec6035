"""Folding subscriptions, wallet links and memberships into a tenant's effective tier."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from domain import ids
from domain.entitlements import (
    DEFAULT_SOURCE,
    SUBSCRIPTION_SOURCE,
    effective,
    fold,
    subscription_change,
)
from domain.events import (
    Event,
    MembershipChanged,
    SubscriptionChanged,
    WalletLinked,
    WalletUnlinked,
)
from domain.tiers import TIERS

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
WALLET = "0x19E7E376E7C213B7E7e7e46cc70A5dD086DAff2A"
OTHER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def _env(cls: type[Event], tenant: str = "acme"):  # type: ignore[no-untyped-def]
    return ids.envelope(
        cls,
        run_id=f"test-{tenant}",
        tenant_id=tenant,
        actor="test",
        correlation_id="c",
        discriminator=(str(uuid.uuid4()),),
        occurred_at=NOW,
    )


def subscribed(name: str, expires_at: datetime | None = None, tenant: str = "acme") -> Event:
    return SubscriptionChanged(_env(SubscriptionChanged, tenant), name, "test", expires_at)


def linked(address: str = WALLET, tenant: str = "acme") -> Event:
    return WalletLinked(_env(WalletLinked, tenant), address, 31337, "omnihub.dev", "n0nce123", NOW)


def unlinked(address: str = WALLET) -> Event:
    return WalletUnlinked(_env(WalletUnlinked), address)


def membership(
    change: str, tier: str, expires_at: datetime, holder: str = WALLET, token: str = "1"
) -> Event:
    return MembershipChanged(
        _env(MembershipChanged, "*"),
        31337,
        CONTRACT,
        token,
        change,
        holder,
        tier,
        expires_at,
        7,
        "0x" + "ab" * 32,
        "0x" + "cd" * 32,
        0,
    )


def test_a_tenant_with_nothing_is_free_by_default() -> None:
    result = effective(fold("acme", []), NOW)
    assert (result.tier, result.source, result.until) == ("free", DEFAULT_SOURCE, None)
    assert result.entitlements["max_plan_steps"].value == TIERS["free"].max_plan_steps
    assert {g.source for g in result.entitlements.values()} == {DEFAULT_SOURCE}


def test_a_subscription_sets_the_tier_until_it_expires() -> None:
    ends = NOW + timedelta(days=30)
    state = fold("acme", [subscribed("starter", ends)])
    result = effective(state, NOW)
    assert (result.tier, result.source, result.until) == ("starter", SUBSCRIPTION_SOURCE, ends)
    assert result.entitlements["llm_planner"].value is True
    assert effective(state, ends).tier == "free"


def test_another_tenants_subscription_does_not_count() -> None:
    assert effective(fold("acme", [subscribed("pro", tenant="globex")]), NOW).tier == "free"


def test_a_membership_of_a_linked_wallet_lifts_the_tier_with_its_source() -> None:
    ends = NOW + timedelta(days=30)
    state = fold("acme", [subscribed("starter"), linked(), membership("minted", "pro", ends)])
    result = effective(state, NOW)
    assert result.tier == "pro"
    assert result.source == f"membership:31337:{CONTRACT.lower()}:1"
    assert result.entitlements["plan_template_sharing"].source == result.source
    assert result.until == ends


def test_an_expired_membership_falls_back_to_the_subscription_then_free() -> None:
    events = [
        subscribed("starter", NOW + timedelta(days=10)),
        linked(),
        membership("minted", "enterprise", NOW + timedelta(days=1)),
    ]
    state = fold("acme", events)
    assert effective(state, NOW).tier == "enterprise"
    assert effective(state, NOW + timedelta(days=2)).source == SUBSCRIPTION_SOURCE
    assert effective(state, NOW + timedelta(days=11)).tier == "free"


def test_a_renewal_extends_and_a_revocation_ends_the_membership() -> None:
    minted = membership("minted", "pro", NOW + timedelta(days=1))
    renewed = membership("renewed", "pro", NOW + timedelta(days=60))
    state = fold("acme", [linked(), minted, renewed])
    assert effective(state, NOW + timedelta(days=30)).tier == "pro"
    revoked = membership("revoked", "pro", NOW + timedelta(days=60))
    assert effective(fold("acme", [linked(), minted, renewed, revoked]), NOW).tier == "free"


def test_a_transfer_moves_the_tier_to_the_new_holders_tenant() -> None:
    minted = membership("minted", "pro", NOW + timedelta(days=30))
    moved = membership("transferred", "pro", NOW + timedelta(days=30), holder=OTHER)
    assert effective(fold("acme", [linked(), minted, moved]), NOW).tier == "free"
    other = [linked(OTHER, tenant="globex"), minted, moved]
    assert effective(fold("globex", other), NOW).tier == "pro"


def test_unlinking_the_wallet_stops_its_membership_counting() -> None:
    events = [linked(), membership("minted", "pro", NOW + timedelta(days=30)), unlinked()]
    assert effective(fold("acme", events), NOW).tier == "free"


def test_a_retraction_restores_the_tokens_earlier_state() -> None:
    first = membership("minted", "starter", NOW + timedelta(days=30))
    reorged = membership("renewed", "pro", NOW + timedelta(days=30))
    retracted = membership("retracted", "starter", NOW + timedelta(days=30))
    assert effective(fold("acme", [linked(), first, reorged]), NOW).tier == "pro"
    assert effective(fold("acme", [linked(), first, reorged, retracted]), NOW).tier == "starter"


def test_the_best_of_several_memberships_wins_and_a_tie_goes_to_the_longest() -> None:
    events = [
        linked(),
        subscribed("pro", NOW + timedelta(days=5)),
        membership("minted", "pro", NOW + timedelta(days=50), token="2"),
        membership("minted", "starter", NOW + timedelta(days=500), token="3"),
    ]
    result = effective(fold("acme", events), NOW)
    assert (result.tier, result.until) == ("pro", NOW + timedelta(days=50))
    assert result.source.endswith(":2")


def test_subscription_change_validates_the_tier_and_is_idempotent_per_request() -> None:
    one = subscription_change("acme", "pro", actor="user:op", request_id="r1")
    again = subscription_change("acme", "pro", actor="user:op", request_id="r1")
    assert one.envelope.event_id == again.envelope.event_id
    assert (one.envelope.run_id, one.tier) == ("tier-acme", "pro")
    with pytest.raises(ValueError, match="unknown tier"):
        subscription_change("acme", "gold", actor="user:op", request_id="r2")
    with pytest.raises(ValueError, match="timezone"):
        subscription_change(
            "acme", "pro", actor="u", request_id="r3", expires_at=datetime(2030, 1, 1)
        )
