"""The tiers table: complete, ordered, and each step up never takes anything away."""

from __future__ import annotations

import itertools
import math

import pytest

from domain.tiers import TIER_NAMES, TIERS, markdown_table, tier


def _generosity(name: str, value: object) -> float | tuple[float, float]:
    """A comparable measure: bigger is more generous."""
    if value is None:
        return math.inf
    if name == "audit_retention_days" and value == 0:
        return math.inf  # kept forever
    if isinstance(value, tuple):
        least, most = value
        return (-least, most)  # a wider range is more generous
    assert isinstance(value, int)
    return float(value)


def test_every_tier_is_declared_in_rank_order() -> None:
    assert tuple(TIERS) == TIER_NAMES == ("free", "starter", "pro", "enterprise")
    assert [TIERS[n].rank for n in TIER_NAMES] == [0, 1, 2, 3]


def test_every_tier_sets_every_entitlement() -> None:
    expected = {
        "requests_per_minute_per_key",
        "requests_per_minute_per_tenant",
        "in_flight_per_key",
        "in_flight_per_tenant",
        "goals_per_month",
        "max_plan_steps",
        "llm_planner",
        "plan_template_sharing",
        "approval_timeout_s",
        "audit_retention_days",
    }
    for name in TIER_NAMES:
        assert set(TIERS[name].entitlements()) == expected


@pytest.mark.parametrize("lower,higher", itertools.pairwise(TIER_NAMES))
def test_a_higher_tier_is_never_less_generous(lower: str, higher: str) -> None:
    low, high = TIERS[lower].entitlements(), TIERS[higher].entitlements()  # type: ignore[index]
    for name in low:
        a, b = _generosity(name, low[name]), _generosity(name, high[name])
        if isinstance(a, tuple) and isinstance(b, tuple):
            assert b[0] >= a[0] and b[1] >= a[1], name
        else:
            assert b >= a, name


def test_per_key_limits_fit_within_per_tenant_limits() -> None:
    for t in TIERS.values():
        assert t.requests_per_minute_per_key <= t.requests_per_minute_per_tenant
        assert t.in_flight_per_key <= t.in_flight_per_tenant
        assert t.approval_timeout_s[0] < t.approval_timeout_s[1]


def test_free_has_no_llm_planner_and_no_sharing() -> None:
    assert TIERS["free"].llm_planner is False
    assert TIERS["free"].plan_template_sharing is False


def test_unknown_tier_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="one of free, starter, pro, enterprise"):
        tier("platinum")


def test_the_readme_shows_the_table_as_declared() -> None:
    from omnihub import REPO_ROOT

    assert markdown_table() in (REPO_ROOT / "README.md").read_text()
