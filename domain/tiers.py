"""The subscription tiers, declared once: what each one entitles a tenant to.

Every limit the gateway and the sagas enforce per tier is a column here; nothing else
in the code base spells a tier's number. Tiers are ordered (``rank``) and every
entitlement is at least as generous in a higher tier, so "the best tier" is also the
best value of each entitlement.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Literal, get_args

TierName = Literal["free", "starter", "pro", "enterprise"]
TIER_NAMES: tuple[TierName, ...] = get_args(TierName)
Entitlement = int | bool | tuple[int, int] | None

MINUTE = 60
HOUR = 3600
DAY = 24 * HOUR


@dataclass(frozen=True)
class Tier:
    """One tier's entitlements. ``None`` means unlimited; 0 days of audit: kept forever."""

    name: TierName
    rank: int
    requests_per_minute_per_key: int
    requests_per_minute_per_tenant: int
    in_flight_per_key: int
    in_flight_per_tenant: int
    goals_per_month: int | None
    max_plan_steps: int
    llm_planner: bool
    plan_template_sharing: bool
    approval_timeout_s: tuple[int, int]  # the range a run may ask for: (least, most)
    audit_retention_days: int

    def entitlements(self) -> dict[str, Entitlement]:
        """Each entitlement by name (every field but ``name`` and ``rank``)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _NOT_LIMITS}


_NOT_LIMITS = frozenset({"name", "rank"})

TIERS: Mapping[TierName, Tier] = {
    tier.name: tier
    for tier in (
        Tier(
            name="free",
            rank=0,
            requests_per_minute_per_key=30,
            requests_per_minute_per_tenant=60,
            in_flight_per_key=2,
            in_flight_per_tenant=4,
            goals_per_month=100,
            max_plan_steps=5,
            llm_planner=False,
            plan_template_sharing=False,
            approval_timeout_s=(5 * MINUTE, 1 * HOUR),
            audit_retention_days=90,  # what the original platform kept; see domain.audit_retention
        ),
        Tier(
            name="starter",
            rank=1,
            requests_per_minute_per_key=60,
            requests_per_minute_per_tenant=240,
            in_flight_per_key=5,
            in_flight_per_tenant=20,
            goals_per_month=2_000,
            max_plan_steps=10,
            llm_planner=True,
            plan_template_sharing=False,
            approval_timeout_s=(5 * MINUTE, 1 * DAY),
            audit_retention_days=90,
        ),
        Tier(
            name="pro",
            rank=2,
            requests_per_minute_per_key=300,
            requests_per_minute_per_tenant=1_200,
            in_flight_per_key=20,
            in_flight_per_tenant=100,
            goals_per_month=20_000,
            max_plan_steps=25,
            llm_planner=True,
            plan_template_sharing=True,
            approval_timeout_s=(1 * MINUTE, 7 * DAY),
            audit_retention_days=365,
        ),
        Tier(
            name="enterprise",
            rank=3,
            requests_per_minute_per_key=1_200,
            requests_per_minute_per_tenant=6_000,
            in_flight_per_key=100,
            in_flight_per_tenant=500,
            goals_per_month=None,
            max_plan_steps=100,
            llm_planner=True,
            plan_template_sharing=True,
            approval_timeout_s=(1 * MINUTE, 30 * DAY),
            audit_retention_days=0,
        ),
    )
}
"""Every tier by name, from the least to the most generous."""


def tier(name: str) -> Tier:
    """The tier called ``name``; ``ValueError`` naming the known ones otherwise."""
    if name not in TIERS:
        raise ValueError(f"unknown tier {name!r}; one of {', '.join(TIER_NAMES)}")
    return TIERS[name]  # type: ignore[index]


def markdown_table() -> str:
    """The tiers as a Markdown table (the README's copy is checked against it)."""
    names = list(TIERS["free"].entitlements())
    lines = [
        "| entitlement | " + " | ".join(TIER_NAMES) + " |",
        "|---|" + "---|" * len(TIER_NAMES),
    ]
    for name in names:
        cells = [_cell(name, TIERS[t].entitlements()[name]) for t in TIER_NAMES]
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(name: str, value: Entitlement) -> str:
    if name == "audit_retention_days" and value == 0:
        return "forever"
    if value is None:
        return "unlimited"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, tuple):
        return f"{_duration(value[0])} to {_duration(value[1])}"
    return f"{value:,}"


def _duration(seconds: int) -> str:
    for unit, size in (("d", DAY), ("h", HOUR), ("min", MINUTE)):
        if seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"
