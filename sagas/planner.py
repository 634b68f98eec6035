"""Planners propose plans as JSON; :func:`sagas.plan.validate_plan` decides if they run.

:class:`RuleBasedPlanner` is the planner used when no model is configured
(``OMNIHUB_LLM_MODEL`` unset) and whenever the ``llm_planner`` kill switch is engaged.
It understands few goals and says so: a clause it does not understand makes the whole
goal ``unplannable`` (the run fails with that cause) rather than a step that pretends.
Its rules, applied to a goal:

1. The goal is split into clauses on ``then``, ``;`` and ``->``. Each clause becomes one
   step that depends on the step before it (a chain); clauses split on `` and also ``
   become independent siblings that share the previous step as their dependency.
2. A clause is matched, first rule wins (:data:`UNDERSTOOD` says the same to users):

   - ``wait|sleep|pause N s|sec|seconds`` -> ``wait`` ``{"seconds": N}``;
   - contains an ``http(s)://`` URL -> ``http_call`` POSTing ``{"goal": clause}`` to it
     (``DELETE`` to the same URL undoes it when the clause says ``undoable``);
   - names a payment (``pay``, ``refund``, ``transfer``, ``wire``, ``withdraw``) ->
     ``pg_record`` of the instruction into collection ``payment_instructions``;
   - starts with ``save|store|record|write|remember`` -> ``pg_record`` into collection
     ``notes`` with ``{"text": clause}`` plus the previous step's result;
   - starts with ``upper|shout`` -> ``transform`` ``upper`` of the rest;
   - starts with ``say|echo|print|repeat`` -> ``transform`` ``echo`` of the rest;
   - anything else: the goal is unplannable.
3. Each step's risk comes from the tenant's risk policy (:mod:`domain.risk_policy`, the
   one the guardian uses): 0.9 or more when a rule the tenant sends to a human matches
   the clause (a payment, a deletion, an amount over the limit), else 0.1.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from domain.risk_policy import RiskPolicy, TenantPolicies, find
from sagas.plan import PlanInvalid

_CLAUSES = re.compile(r"\s*(?:\bthen\b|;|->)\s*", re.IGNORECASE)
_SIBLINGS = re.compile(r"\s+and also\s+", re.IGNORECASE)
_WAIT = re.compile(r"\b(?:wait|sleep|pause)\s+(\d+(?:\.\d+)?)\s*(?:s|sec|secs|seconds?)\b", re.I)
_URL = re.compile(r"https?://[^\s\"'<>]+")
_SAVE = re.compile(r"^(?:save|store|record|write|remember)\b\s*(.*)$", re.IGNORECASE)
_UPPER = re.compile(r"^(?:upper|shout)\b\s*(.*)$", re.IGNORECASE)
_SAY = re.compile(r"^(?:say|echo|print|repeat)\b\s*(.*)$", re.IGNORECASE)
_PAY = re.compile(r"\b(?:pay|payment|refund|transfer|wire|withdraw)\b", re.IGNORECASE)
UNDERSTOOD = (
    "clauses joined by 'then', ';' or '->' (siblings by 'and also'), each one of: "
    "'say|echo|print|repeat TEXT', 'upper|shout TEXT', 'save|store|record|write|remember "
    "TEXT', 'wait|sleep|pause N seconds', a clause with an http(s):// URL to call, or a "
    "payment ('pay|refund|transfer|wire|withdraw ...', recorded as an instruction)"
)


@dataclass(frozen=True)
class PlanRequest:
    """What a planner is asked: the sanitised goal and the tools it may use."""

    run_id: str
    tenant_id: str
    goal: str
    tools: Sequence[Mapping[str, str]]
    context: Mapping[str, str] = field(default_factory=dict)


class PlannerUnavailable(Exception):
    """The planner could not answer now (timeout, connection, 5xx): worth a retry."""


class Planner(Protocol):
    """Proposes a plan ``{"steps": [...]}`` for a goal; validation happens elsewhere."""

    name: str

    async def propose(self, request: PlanRequest) -> Mapping[str, Any]:
        """A proposed plan; raises :class:`PlannerUnavailable` or ``PlanInvalid``."""
        ...


class RuleBasedPlanner:
    """The documented demo planner (see the module docstring)."""

    name = "rules"

    def __init__(self, policies: TenantPolicies | None = None) -> None:
        self._policies = policies or TenantPolicies()

    async def propose(self, request: PlanRequest) -> Mapping[str, Any]:
        return rule_plan(request.goal, self._policies.of(request.tenant_id))


def rule_plan(goal: str, policy: RiskPolicy | None = None) -> dict[str, Any]:
    """The plan the rules make for ``goal`` (pure); raises ``PlanInvalid`` ``unplannable``
    naming the first clause it does not understand."""
    steps: list[dict[str, Any]] = []
    previous: list[str] = []
    for clause in filter(None, (c.strip() for c in _CLAUSES.split(goal))):
        current: list[str] = []
        for part in filter(None, (p.strip() for p in _SIBLINGS.split(clause))):
            step_id = f"s{len(steps) + 1}"
            rule = _rule(part, previous)
            if rule is None:
                raise PlanInvalid(
                    "unplannable",
                    f"the rules planner does not understand {part[:200]!r}; "
                    f"it understands {UNDERSTOOD}",
                )
            risk = find(part, policy or RiskPolicy()).step_risk or 0.1
            rule["risk"] = max(risk, rule.get("risk", 0.0))
            steps.append({"id": step_id, "depends_on": list(previous), **rule})
            current.append(step_id)
        previous = current
    if not steps:
        raise PlanInvalid("unplannable", f"the goal is empty; it understands {UNDERSTOOD}")
    return {"steps": steps}


def _rule(clause: str, previous: Sequence[str]) -> dict[str, Any] | None:
    if wait := _WAIT.search(clause):
        return {"tool": "wait", "arguments": {"seconds": float(wait.group(1))}}
    if url := _URL.search(clause):
        arguments: dict[str, Any] = {
            "url": url.group(0),
            "method": "POST",
            "json": {"goal": clause},
        }
        if "undoable" in clause.lower():
            arguments["compensate_url"] = url.group(0)
        return {"tool": "http_call", "arguments": arguments, "risk": 0.3}
    if _PAY.search(clause):
        return _record("payment_instructions", {"instruction": clause}, previous)
    if save := _SAVE.match(clause):
        return _record("notes", {"text": save.group(1) or clause}, previous)
    if upper := _UPPER.match(clause):
        return {"tool": "transform", "arguments": {"op": "upper", "value": upper.group(1)}}
    if say := _SAY.match(clause):
        return {"tool": "transform", "arguments": {"op": "echo", "value": say.group(1)}}
    return None


def _record(collection: str, record: dict[str, Any], previous: Sequence[str]) -> dict[str, Any]:
    if previous:
        record["previous"] = "${" + previous[0] + "}"
    return {"tool": "pg_record", "arguments": {"collection": collection, "record": record}}
