"""The one risk policy: a test per rule, the tenant's configuration, and that the
guardian and planning both judge by it."""

from __future__ import annotations

import json

import pytest

from domain.events import PlanStep
from domain.risk_policy import (
    AMOUNT_OVER_LIMIT,
    BROAD_SCOPE,
    CREDENTIALS,
    DATA_DELETION,
    EXTERNAL_WRITE,
    FINANCIAL,
    PolicyInvalid,
    RiskPolicy,
    amounts,
    find,
    policies_from,
    required_approvers,
)
from sagas.guardian import GuardianPolicy, assess
from sagas.plan_source import with_policy_risk


@pytest.mark.parametrize(
    ("text", "rule", "needs_approval"),
    [
        ("refund 500 EUR to account 42", FINANCIAL, True),
        ("wire the money to bob", FINANCIAL, True),
        ("post the summary to https://hooks.example/x", EXTERNAL_WRITE, False),
        ("send an email to the team", EXTERNAL_WRITE, False),
        ("delete the customer's records", DATA_DELETION, True),
        ("truncate the table", DATA_DELETION, True),
        ("note that 2,500.50 USD is owed", AMOUNT_OVER_LIMIT, True),
        ("rotate the api key", CREDENTIALS, False),
        ("summarise every customer", BROAD_SCOPE, False),
    ],
)
def test_each_rule_is_found_and_decides_approval_by_default(
    text: str, rule: str, needs_approval: bool
) -> None:
    found = find(text, RiskPolicy())
    assert rule in found.hits
    assert found.needs_approval is needs_approval
    assert (found.step_risk > 0.7) is needs_approval


def test_a_plain_text_hits_nothing() -> None:
    found = find("say hello then upper world", RiskPolicy())
    assert (found.hits, found.score, found.needs_approval, found.step_risk) == ((), 0.0, False, 0)


def test_amounts_are_read_in_the_usual_spellings() -> None:
    assert amounts("pay $1,000,000 and EUR 5 and 7.5 euros and 900 USD") == [
        1_000_000.0,
        5.0,
        7.5,
        900.0,
    ]


def test_an_amount_over_the_limit_needs_more_than_one_approver() -> None:
    policy = RiskPolicy()
    big, small = find("wire 1000000 USD to 42", policy), find("pay 900 EUR to bob", policy)
    assert required_approvers(policy, big.step_risk) == 2
    assert required_approvers(policy, small.step_risk) == 1


def test_a_tenant_configures_its_rules_limit_and_approvers() -> None:
    policies = policies_from(
        json.dumps(
            {
                "*": {"amount_limit": 100},
                "acme": {"approve": ["external_write"], "approvers": 3},
            }
        )
    )
    acme, other = policies.of("acme"), policies.of("other")
    assert find("post to https://x.example", acme).needs_approval
    assert not find("pay 5 EUR to bob", acme).needs_approval
    assert acme.amount_limit == 100  # the "*" entry is every tenant's base
    assert required_approvers(acme, 0.95) == 3
    assert find("say 150 EUR", other).needs_approval  # over the platform-wide 100
    assert policies_from("").of("x") == RiskPolicy()


@pytest.mark.parametrize(
    "raw",
    ['{"acme": {"approve": ["fly"]}}', '{"acme": {"limit": 1}}', '{"acme": {"approvers": 0}}'],
)
def test_a_bad_tenant_policy_is_refused_at_start(raw: str) -> None:
    with pytest.raises(PolicyInvalid):
        policies_from(raw)


def test_the_guardian_and_planning_judge_by_the_same_policy() -> None:
    goal = "refund 500 EUR to account 42 then pay 900 EUR to bob"
    verdict = assess(goal, GuardianPolicy())
    assert "moves money" in verdict.reasons
    # Whatever a planner proposed (here: risk 0), the policy raises the step's risk.
    step = PlanStep(
        step_id="s1",
        tool="pg_record",
        arguments_json=json.dumps({"record": {"text": "pay 900 EUR to bob"}}),
        depends_on=(),
        risk=0.0,
        compensation="delete",
        timeout_s=30.0,
        max_attempts=3,
    )
    assert with_policy_risk(step, RiskPolicy()).risk == 0.9
    lax = RiskPolicy(approve=frozenset())
    assert with_policy_risk(step, lax).risk == 0.0
    assert "moves money" in assess(goal, GuardianPolicy(risk=lax)).reasons
