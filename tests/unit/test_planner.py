"""Plan validation, the DAG helpers, argument references and the rule-based planner."""

from __future__ import annotations

import json
from typing import Any

import pytest

from domain.risk_policy import RiskPolicy
from sagas.llm_planner import messages_for, parse_plan_text
from sagas.plan import PlanInvalid, ready_steps, resolve_arguments, topological_order, validate_plan
from sagas.planner import PlanRequest, RuleBasedPlanner, rule_plan

TOOLS = {
    "transform": "noop",
    "wait": "noop",
    "http_call": "http_compensate",
    "pg_record": "pg_record_compensate",
}


def step(
    sid: str, tool: str = "transform", deps: list[str] | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "id": sid,
        "tool": tool,
        "arguments": {"op": "echo", "value": sid},
        "depends_on": deps or [],
        **extra,
    }


def invalid(raw: Any) -> PlanInvalid:
    with pytest.raises(PlanInvalid) as caught:
        validate_plan(raw, TOOLS)
    return caught.value


def test_a_valid_plan_becomes_plan_steps_with_the_registry_compensation() -> None:
    steps = validate_plan(
        {"steps": [step("a"), step("b", "http_call", ["a"], risk=0.8, compensation="whatever")]},
        TOOLS,
    )
    assert [s.step_id for s in steps] == ["a", "b"]
    assert steps[1].depends_on == ("a",)
    assert steps[1].compensation == "http_compensate"
    assert steps[1].risk == 0.8
    assert json.loads(steps[0].arguments_json) == {"op": "echo", "value": "a"}


def test_an_unknown_tool_is_refused_by_name() -> None:
    error = invalid({"steps": [step("a", "rm_rf")]})
    assert error.reason == "unknown_tool"
    assert "'rm_rf'" in error.detail


def test_a_cycle_is_refused_naming_its_steps() -> None:
    error = invalid(
        {"steps": [step("a", deps=["c"]), step("b", deps=["a"]), step("c", deps=["b"]), step("d")]}
    )
    assert error.reason == "cycle"
    assert error.detail.endswith("a, b, c")


def test_a_self_dependency_is_a_cycle() -> None:
    assert invalid({"steps": [step("a", deps=["a"])]}).reason == "cycle"


def test_a_dangling_dependency_is_refused() -> None:
    error = invalid({"steps": [step("a", deps=["ghost"])]})
    assert error.reason == "dangling_dependency"
    assert "'ghost'" in error.detail


def test_duplicate_step_ids_are_refused() -> None:
    assert invalid({"steps": [step("a"), step("a")]}).reason == "duplicate_step"


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "[]",
        {"steps": []},
        {"steps": [{"tool": "transform"}]},
        {"steps": [step("a", risk=1.5)]},
        {"steps": [step("bad id!")]},
        {"steps": [step("a", max_attempts=0)]},
    ],
)
def test_malformed_plans_are_refused(raw: Any) -> None:
    assert invalid(raw).reason == "malformed"


def test_topological_order_and_ready_steps_follow_dependencies() -> None:
    steps = validate_plan(
        {
            "steps": [
                step("d", deps=["b", "c"]),
                step("b", deps=["a"]),
                step("c", deps=["a"]),
                step("a"),
            ]
        },
        TOOLS,
    )
    assert topological_order(steps) == ["a", "b", "c", "d"]
    assert [s.step_id for s in ready_steps(steps, [], [])] == ["a"]
    assert [s.step_id for s in ready_steps(steps, ["a"], [])] == ["b", "c"]
    assert [s.step_id for s in ready_steps(steps, ["a", "b"], ["c"])] == []
    assert [s.step_id for s in ready_steps(steps, ["a", "b", "c"], [])] == ["d"]


def test_references_take_dependency_results() -> None:
    inputs = {"s1": {"value": "Paris", "list": [1, 2]}, "s2": {"n": 3}}
    args = {
        "whole": "${s1}",
        "field": "${ s1.value }",
        "in_text": "to ${s1.value} x${s2.n}",
        "idx": ["${s1.list.1}"],
    }
    assert resolve_arguments(args, inputs) == {
        "whole": {"value": "Paris", "list": [1, 2]},
        "field": "Paris",
        "in_text": "to Paris x3",
        "idx": [2],
    }


@pytest.mark.parametrize("ref", ["${s9}", "${s1.nope}", "${s1.list.7}"])
def test_a_reference_to_nothing_is_refused(ref: str) -> None:
    with pytest.raises(PlanInvalid) as caught:
        resolve_arguments({"x": ref}, {"s1": {"list": []}})
    assert caught.value.reason == "dangling_reference"


def test_rule_plan_chains_clauses_and_runs_siblings_in_parallel() -> None:
    plan = rule_plan(
        "say hi then wait 2 seconds and also post to https://h.example/x; save the summary"
    )
    steps = validate_plan(plan, TOOLS)
    assert [(s.step_id, s.tool, s.depends_on) for s in steps] == [
        ("s1", "transform", ()),
        ("s2", "wait", ("s1",)),
        ("s3", "http_call", ("s1",)),
        ("s4", "pg_record", ("s2", "s3")),
    ]
    assert json.loads(steps[1].arguments_json) == {"seconds": 2.0}
    assert json.loads(steps[3].arguments_json)["record"] == {
        "text": "the summary",
        "previous": "${s2}",
    }


def test_rule_plan_marks_money_as_risky_by_the_one_policy() -> None:
    steps = validate_plan(rule_plan("approve the payment then say done"), TOOLS)
    assert steps[0].risk == 0.9 and steps[1].risk == 0.1
    assert steps[0].tool == "pg_record"


def test_money_moving_goal_waits_for_approval_at_every_step() -> None:
    # Issue 17: the guardian said "moves money" but the old word list let this run alone.
    steps = validate_plan(rule_plan("refund 500 EUR to account 42 then pay 900 EUR to bob"), TOOLS)
    assert [s.risk > 0.7 for s in steps] == [True, True]


def test_a_tenant_that_sends_nothing_to_a_human_gets_low_risk_steps() -> None:
    lax = RiskPolicy(approve=frozenset())
    steps = validate_plan(rule_plan("pay 5 EUR to bob", lax), TOOLS)
    assert steps[0].risk == 0.1


def test_rule_plan_undoable_webhook_gets_a_compensation_url() -> None:
    args = json.loads(
        validate_plan(rule_plan("notify http://h/x undoable"), TOOLS)[0].arguments_json
    )
    assert args["compensate_url"] == "http://h/x"


async def test_rule_planner_proposes_valid_plans_for_what_it_understands() -> None:
    for goal in ["say hi", "upper hello", "save it then wait 1 s", "pay 3 EUR to bob"]:
        raw = await RuleBasedPlanner().propose(PlanRequest("r", "t", goal, []))
        assert validate_plan(raw, TOOLS)


@pytest.mark.parametrize("goal", ["", "then then", "Book flight to Paris", "say hi then fly"])
async def test_rule_planner_refuses_what_it_does_not_understand(goal: str) -> None:
    # It used to turn any goal into an echo step, and the run "completed".
    with pytest.raises(PlanInvalid) as caught:
        await RuleBasedPlanner().propose(PlanRequest("r", "t", goal, []))
    assert caught.value.reason == "unplannable"
    assert "it understands" in caught.value.detail


def test_model_answers_in_code_fences_parse_and_prose_does_not() -> None:
    assert parse_plan_text('```json\n{"steps": []}\n```') == {"steps": []}
    with pytest.raises(PlanInvalid) as caught:
        parse_plan_text("Sure! Here is your plan: step 1...")
    assert caught.value.reason == "malformed"
    with pytest.raises(PlanInvalid):
        parse_plan_text("[1, 2]")


def test_the_prompt_lists_tools_and_the_goal() -> None:
    request = PlanRequest(
        "r", "t", "Book it", [{"name": "wait", "description": "Pause."}], {"k": "v"}
    )
    system, user = messages_for(request)
    assert '"name": "wait"' in system["content"]
    assert user["content"].startswith("Goal: Book it")


def test_the_llm_key_comes_from_omnihub_or_the_providers_own_variable() -> None:
    from sagas.llm_planner import resolve_api_key

    assert resolve_api_key("openai/gpt-4o-mini", None, "sk-omnihub", {}) == "sk-omnihub"
    # No OMNIHUB_LLM_API_KEY: litellm reads OPENAI_API_KEY / ANTHROPIC_API_KEY itself.
    assert resolve_api_key("openai/gpt-4o-mini", None, None, {"OPENAI_API_KEY": "k"}) is None
    assert resolve_api_key("anthropic/claude", None, None, {}) is None
    # A self-hosted OpenAI-compatible server with no key anywhere gets a placeholder...
    local = "http://127.0.0.1:8001/v1"
    assert resolve_api_key("openai/local", local, None, {}) == "not-needed"
    # ...but never one that hides the provider's own key.
    assert resolve_api_key("openai/local", local, None, {"OPENAI_API_KEY": "k"}) is None
