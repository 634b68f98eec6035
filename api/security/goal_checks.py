"""The entitlements a goal is held to when it is accepted (``POST /goals`` and
``/goals:batch``): goals per month, and the approval timeout range when its context asks
for one (``approval_timeout_s``). Each refusal is audited and names the entitlement
(:func:`api.security.tiers.refuse`): 402 when a higher tier allows it, with that tier.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from api.deps import AppState
from api.problems import Problem
from api.security.deps import security_of
from api.security.principal import Principal
from api.security.quota import GoalQuota, QuotaUnavailable
from api.security.tiers import refuse
from domain.entitlements import Effective
from domain.tier_rules import APPROVAL_TIMEOUT_KEY, approval_timeout, least_tier, month_of, within


async def check_approval_timeout(
    state: AppState, p: Principal, tier: Effective, context: dict[str, str], resource: str
) -> None:
    """Refuse a goal whose context asks for an approval timeout outside the tier's range."""
    try:
        asked = approval_timeout(context)
    except ValueError as exc:
        raise Problem(422, "validation-error", str(exc)) from exc
    bounds = tier.entitlements["approval_timeout_s"].value
    if asked is None or within(asked, bounds):
        return
    upgrade = least_tier(lambda t: within(asked, t.approval_timeout_s))
    if upgrade is None:
        raise Problem(
            422,
            "approval-timeout-out-of-range",
            f"context.{APPROVAL_TIMEOUT_KEY}: no tier allows {asked} s",
            entitlement="approval_timeout_s",
        )
    least, most = bounds  # type: ignore[misc]
    raise await refuse(
        security_of(state).audit,
        p,
        tier,
        "approval_timeout_s",
        f"an approval timeout of {asked} s is outside the {tier.tier} tier's"
        f" {least} to {most} s; the {upgrade} tier allows it",
        resource=resource,
        extra={"upgrade_to": upgrade, "asked": asked},
    )


@dataclass(frozen=True)
class Charge:
    """Goals counted against a tenant's month: given back if they are not recorded."""

    quota: GoalQuota
    tenant_id: str
    month: str
    granted: int

    async def give_back(self, n: int | None = None) -> None:
        """Uncount ``n`` (all by default) of the goals charged."""
        if self.granted:
            await self.quota.give_back(self.tenant_id, self.month, n or self.granted)


async def take_goals(
    state: AppState, p: Principal, tier: Effective, n: int, resource: str
) -> tuple[Charge, Problem | None]:
    """Count up to ``n`` goals against the month; the charge, and the (audited) refusal
    of the rest when the tier's ``goals_per_month`` leaves fewer than ``n``."""
    sec = security_of(state)
    if sec.quota is None:
        raise Problem(503, "gateway-unavailable", "the goal quota is not configured")
    limit = tier.entitlements["goals_per_month"].value
    month = month_of(datetime.now(UTC))
    try:
        taken = await sec.quota.take(p.tenant_id, month, n, limit)  # type: ignore[arg-type]
    except QuotaUnavailable as exc:
        raise Problem(
            503, "quota-unavailable", "cannot count this month's goals right now"
        ) from exc
    charge = Charge(sec.quota, p.tenant_id, month, taken.granted)
    if taken.granted == n:
        return charge, None
    upgrade = least_tier(lambda t: t.goals_per_month is None or t.goals_per_month > taken.used)
    problem = await refuse(
        sec.audit,
        p,
        tier,
        "goals_per_month",
        f"the {tier.tier} tier allows {limit} goals a month; {month} has used them",
        resource=resource,
        extra={"upgrade_to": upgrade, "month": month},
    )
    return charge, problem
