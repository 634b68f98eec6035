"""Small pure rules the gateway applies with a tenant's tier (:mod:`domain.tiers`).

A refusal names the entitlement and, when a higher tier would allow the request, that
tier: it is then a 402 (the tier lacks it; pay to get it), otherwise 422 (nothing
allows it).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from domain.tiers import TIERS, Entitlement, Tier, TierName

APPROVAL_TIMEOUT_KEY = "approval_timeout_s"
"""The goal context key that asks for a run's approval timeout, in seconds."""


def least_tier(allows: Callable[[Tier], bool]) -> TierName | None:
    """The least tier that ``allows`` it, or None if none does."""
    for tier in TIERS.values():  # declared from the least to the most generous
        if allows(tier):
            return tier.name
    return None


def within(seconds: int, bounds: Entitlement) -> bool:
    """Whether ``seconds`` lies in an ``approval_timeout_s`` range (inclusive)."""
    if not isinstance(bounds, tuple):
        raise TypeError(f"not a range: {bounds!r}")
    least, most = bounds
    return least <= seconds <= most


def approval_timeout(context: dict[str, str]) -> int | None:
    """The approval timeout a goal's context asks for (None: the default);
    ``ValueError`` for anything but a whole positive number of seconds."""
    raw = context.get(APPROVAL_TIMEOUT_KEY)
    if raw is None:
        return None
    if not raw.strip().isdigit() or int(raw) <= 0:
        raise ValueError(f"context.{APPROVAL_TIMEOUT_KEY}: a whole number of seconds above 0")
    return int(raw)


def month_of(at: datetime) -> str:
    """The calendar month (UTC) a goal counts against: ``YYYY-MM``."""
    return f"{at.year:04d}-{at.month:02d}"


def too_many_steps(steps: int, max_steps: int, tier: str) -> str | None:
    """Why a plan of ``steps`` steps may not run under a limit of ``max_steps`` (0: none),
    or None: the cause a run fails with."""
    if max_steps <= 0 or steps <= max_steps:
        return None
    upgrade = least_tier(lambda t: t.max_plan_steps >= steps)
    more = f"; the {upgrade} tier allows it" if upgrade else "; no tier allows it"
    whose = f"the {tier} tier" if tier else "this run"
    return (
        f"entitlement_exceeded: max_plan_steps: the plan has {steps} steps,"
        f" {whose} allows {max_steps}{more}"
    )
