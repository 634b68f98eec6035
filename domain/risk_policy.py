"""The one risk policy: which actions are risky, and which of them wait for a human.

Declared once and used by the guardian (a goal's risk score, ``sagas/guardian.py``) and
by planning (each step's risk, ``sagas/planner.py`` and every plan, whichever planner
made it, in ``sagas/plan_source.py``), so a goal the guardian flags as moving money can
never run without an approval because a planner used another word list.

A tenant configures its own :class:`RiskPolicy` (``OMNIHUB_TENANT_POLICIES``, read by
:func:`policies_from`): which rules send a step to a human (``approve``), the amount
above which a step needs approval whatever its verb (``amount_limit``), and how many
distinct people must grant a step above a risk level (``approvers`` above
``approvers_above_risk``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

APPROVAL_RISK = 0.9  # a step's risk when a rule sends it to a human: above 0.7 by default
QUORUM_RISK = 0.95  # ... and above 0.9 when it is also over the amount limit


@dataclass(frozen=True)
class RiskRule:
    """A named kind of action, the pattern that finds it and what it weighs."""

    name: str
    pattern: str
    weight: float
    reason: str


FINANCIAL = "financial"
EXTERNAL_WRITE = "external_write"
DATA_DELETION = "data_deletion"
AMOUNT_OVER_LIMIT = "amount_over_limit"
CREDENTIALS = "credentials"
BROAD_SCOPE = "broad_scope"

RULES: tuple[RiskRule, ...] = (
    RiskRule(
        FINANCIAL,
        r"\b(transfer|wire|payment|pay|refund|withdraw|charge|payout|invoice)\b",
        0.5,
        "moves money",
    ),
    RiskRule(
        EXTERNAL_WRITE,
        r"https?://|\b(post|put|patch|webhook|publish|email|send)\b",
        0.3,
        "writes outside OmniHub",
    ),
    RiskRule(
        DATA_DELETION,
        r"\b(delete|drop|truncate|wipe|erase|destroy|purge)\b|\brm -rf\b",
        0.5,
        "deletes data",
    ),
    RiskRule(
        CREDENTIALS,
        r"\b(password|credential|secret|api[ _-]?key|private key|token)s?\b",
        0.5,
        "touches credentials",
    ),
    RiskRule(
        BROAD_SCOPE, r"\b(all|every) (users?|customers?|records?|accounts?)\b", 0.3, "broad scope"
    ),
)
RULE_NAMES = frozenset(r.name for r in RULES) | {AMOUNT_OVER_LIMIT}

# "500 EUR", "EUR 500", "$1,000,000", "1000000 USD": an amount of money in a text.
_AMOUNT = re.compile(
    r"(?:[$€£]\s?|\b(?:usd|eur|gbp|chf|jpy)\s?)(\d[\d,_]*(?:\.\d+)?)"
    r"|(\d[\d,_]*(?:\.\d+)?)\s?(?:usd|eur|gbp|chf|jpy|dollars?|euros?)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class RiskPolicy:
    """One tenant's rules; the defaults are the platform's."""

    approve: frozenset[str] = frozenset({FINANCIAL, DATA_DELETION, AMOUNT_OVER_LIMIT})
    amount_limit: float = 1000.0
    approvers: int = 2
    approvers_above_risk: float = 0.9
    rules: tuple[RiskRule, ...] = RULES


@dataclass(frozen=True)
class Finding:
    """What the policy finds in a text: the rules hit, their reasons, the scores."""

    hits: tuple[str, ...]
    reasons: tuple[str, ...]
    score: float  # 1 - prod(1 - weight): grows with every independent rule
    needs_approval: bool
    step_risk: float  # the risk a step with this text gets at least (0 if none)


def amounts(text: str) -> list[float]:
    """The amounts of money named in ``text``."""
    found = []
    for match in _AMOUNT.finditer(text):
        digits = (match.group(1) or match.group(2)).replace(",", "").replace("_", "")
        found.append(float(digits))
    return found


def find(text: str, policy: RiskPolicy) -> Finding:
    """What ``policy`` finds in ``text`` (a goal, a clause or a step's tool and arguments)."""
    lowered = text.lower()
    hits: list[str] = []
    reasons: list[str] = []
    keep = 1.0
    for rule in policy.rules:
        if re.search(rule.pattern, lowered):
            hits.append(rule.name)
            reasons.append(rule.reason)
            keep *= 1.0 - rule.weight
    over = [a for a in amounts(text) if a > policy.amount_limit]
    if over:
        hits.append(AMOUNT_OVER_LIMIT)
        reasons.append(
            f"amount {_money(max(over))} is over the limit {_money(policy.amount_limit)}"
        )
        keep *= 0.5
    needs = any(h in policy.approve for h in hits)
    risk = 0.0
    if needs:
        risk = QUORUM_RISK if AMOUNT_OVER_LIMIT in hits else APPROVAL_RISK
    return Finding(tuple(hits), tuple(reasons), round(1.0 - keep, 4), needs, risk)


def _money(value: float) -> str:
    return f"{value:,.0f}" if value.is_integer() else f"{value:,.2f}"


def step_text(tool: str, arguments_json: str) -> str:
    """The text a step is judged by: its tool and its arguments."""
    return f"{tool} {arguments_json}"


def required_approvers(policy: RiskPolicy, risk: float) -> int:
    """How many distinct people must grant a step of ``risk``."""
    return max(1, policy.approvers) if risk > policy.approvers_above_risk else 1


class PolicyInvalid(ValueError):
    """A tenant's policy names an unknown rule or a bad value."""


def parse_policy(raw: Mapping[str, Any], base: RiskPolicy | None = None) -> RiskPolicy:
    """A policy from its JSON form, e.g. ``{"approve": ["financial"], "amount_limit": 500}``."""
    policy = base or RiskPolicy()
    unknown = set(raw) - {"approve", "amount_limit", "approvers", "approvers_above_risk"}
    if unknown:
        raise PolicyInvalid(f"unknown policy field(s): {', '.join(sorted(unknown))}")
    if "approve" in raw:
        approve = frozenset(raw["approve"])
        if bad := approve - RULE_NAMES:
            known = ", ".join(sorted(RULE_NAMES))
            raise PolicyInvalid(f"unknown rule(s) {', '.join(sorted(bad))}; known: {known}")
        policy = replace(policy, approve=approve)
    if "amount_limit" in raw:
        policy = replace(policy, amount_limit=float(raw["amount_limit"]))
    if "approvers" in raw:
        if int(raw["approvers"]) < 1:
            raise PolicyInvalid("approvers must be at least 1")
        policy = replace(policy, approvers=int(raw["approvers"]))
    if "approvers_above_risk" in raw:
        policy = replace(policy, approvers_above_risk=float(raw["approvers_above_risk"]))
    return policy


@dataclass(frozen=True)
class TenantPolicies:
    """Every tenant's policy: its own entry, else ``"*"``, else the platform default."""

    default: RiskPolicy = field(default_factory=RiskPolicy)
    tenants: Mapping[str, RiskPolicy] = field(default_factory=dict)

    def of(self, tenant_id: str) -> RiskPolicy:
        """The policy ``tenant_id`` runs under."""
        return self.tenants.get(tenant_id, self.default)


def policies_from(text: str) -> TenantPolicies:
    """Tenant policies from the ``OMNIHUB_TENANT_POLICIES`` JSON (``""``: defaults)."""
    if not text.strip():
        return TenantPolicies()
    data = json.loads(text)
    if not isinstance(data, dict):
        raise PolicyInvalid("tenant policies must be a JSON object of tenant -> policy")
    default = parse_policy(data.get("*", {}))
    tenants = {t: parse_policy(p, default) for t, p in data.items() if t != "*"}
    return TenantPolicies(default, tenants)
