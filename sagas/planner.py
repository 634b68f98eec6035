"""Planners propose plans as JSON; :func:`sagas.plan.validate_plan` decides if they run.

:class:`RuleBasedPlanner` is the planner used when no model is configured
(``OMNIHUB_LLM_MODEL`` unset) and whenever the ``llm_planner`` kill switch is engaged.
Its rules, applied to a goal:

1. The goal is split into clauses on ``then``, ``;`` and ``->``. Each clause becomes one
   step that depends on the step before it (a chain); clauses split on `` and also ``
   become independent siblings that share the previous step as their dependency.
2. A clause is matched, first rule wins:

   - ``wait|sleep|pause N s|sec|seconds`` -> ``wait`` ``{"seconds": N}``;
   - contains an ``http(s)://`` URL -> ``http_call`` POSTing ``{"goal": clause}`` to it
     (``DELETE`` to the same URL undoes it when the clause says ``undoable``);
   - starts with ``save|store|record|write|remember`` -> ``pg_record`` into collection
     ``notes`` with ``{"text": clause}`` plus the previous step's result;
   - starts with ``upper|shout`` -> ``transform`` ``upper`` of the rest;
   - anything else -> ``transform`` ``echo`` of the clause.
3. A clause mentioning ``approve``, ``payment``, ``transfer``, ``wire`` or ``delete`` gets
   risk 0.9 (above the default approval threshold, so it waits for a human); every
   other step gets risk 0.1.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

_CLAUSES = re.compile(r"\s*(?:\bthen\b|;|->)\s*", re.IGNORECASE)
_SIBLINGS = re.compile(r"\s+and also\s+", re.IGNORECASE)
_WAIT = re.compile(r"\b(?:wait|sleep|pause)\s+(\d+(?:\.\d+)?)\s*(?:s|sec|secs|seconds?)\b", re.I)
_URL = re.compile(r"https?://[^\s\"'<>]+")
_SAVE = re.compile(r"^(?:save|store|record|write|remember)\b\s*(.*)$", re.IGNORECASE)
_UPPER = re.compile(r"^(?:upper|shout)\b\s*(.*)$", re.IGNORECASE)
_RISKY = re.compile(r"\b(approve|approval|payment|transfer|wire|delete)\b", re.IGNORECASE)


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

    async def propose(self, request: PlanRequest) -> Mapping[str, Any]:
        return rule_plan(request.goal)


def rule_plan(goal: str) -> dict[str, Any]:
    """The plan the rules make for ``goal`` (pure)."""
    steps: list[dict[str, Any]] = []
    previous: list[str] = []
    for clause in filter(None, (c.strip() for c in _CLAUSES.split(goal))):
        current: list[str] = []
        for part in filter(None, (p.strip() for p in _SIBLINGS.split(clause))):
            step_id = f"s{len(steps) + 1}"
            steps.append({"id": step_id, "depends_on": list(previous), **_rule(part, previous)})
            current.append(step_id)
        previous = current
    if not steps:
        steps.append({"id": "s1", "tool": "transform", "arguments": {"op": "echo", "value": ""}})
    return {"steps": steps}


def _rule(clause: str, previous: Sequence[str]) -> dict[str, Any]:
    risk = 0.9 if _RISKY.search(clause) else 0.1
    if wait := _WAIT.search(clause):
        return {"tool": "wait", "arguments": {"seconds": float(wait.group(1))}, "risk": risk}
    if url := _URL.search(clause):
        arguments: dict[str, Any] = {
            "url": url.group(0),
            "method": "POST",
            "json": {"goal": clause},
        }
        if "undoable" in clause.lower():
            arguments["compensate_url"] = url.group(0)
        return {"tool": "http_call", "arguments": arguments, "risk": max(risk, 0.3)}
    if save := _SAVE.match(clause):
        record: dict[str, Any] = {"text": save.group(1) or clause}
        if previous:
            record["previous"] = "${" + previous[0] + "}"
        return {
            "tool": "pg_record",
            "arguments": {"collection": "notes", "record": record},
            "risk": risk,
        }
    if upper := _UPPER.match(clause):
        return {
            "tool": "transform",
            "arguments": {"op": "upper", "value": upper.group(1)},
            "risk": risk,
        }
    return {"tool": "transform", "arguments": {"op": "echo", "value": clause}, "risk": risk}
