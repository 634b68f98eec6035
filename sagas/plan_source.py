"""Where a run's plan comes from: the semantic cache first, then a planner.

Whatever the source, the plan is validated against the tool registry before it runs,
so a cached plan that names a tool this worker no longer has is refused like a bad
model answer, and the tenant's risk policy (:mod:`domain.risk_policy`) raises the risk
of every step it sends to a human: no planner, model or cache can lower it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

from domain.events import PlanStep
from domain.killswitch import LLM_PLANNER
from domain.plan_cache import PlanCache
from domain.risk_policy import RiskPolicy, TenantPolicies, find, step_text
from sagas.killswitch import KillSwitches
from sagas.plan import validate_plan
from sagas.planner import Planner, PlanRequest
from sagas.telemetry import plan_looked_up
from sagas.tools import ToolRegistry

WARM_UP_TENANT = "_warmup"  # never a real tenant: those start alphanumeric


@dataclass(frozen=True)
class MadePlan:
    """A validated plan and what ``plan_generated`` records about its origin."""

    steps: tuple[PlanStep, ...]
    planner: str
    from_cache: bool = False
    similarity: float | None = None
    template: str | None = None
    slots: Mapping[str, str] = field(default_factory=dict)


class RunIds(Protocol):
    """The run a plan is made for (the activity's ``RunRef`` fits)."""

    run_id: str
    tenant_id: str


class PlanSource:
    """Cache, then the configured planner (the rules when the ``llm_planner`` switch is on)."""

    def __init__(
        self,
        cache: PlanCache,
        planner: Planner,
        fallback: Planner,
        tools: ToolRegistry,
        kill_switches: KillSwitches,
        policies: TenantPolicies | None = None,
    ) -> None:
        self._cache = cache
        self._planner = planner
        self._fallback = fallback
        self._tools = tools
        self._switches = kill_switches
        self._policies = policies or TenantPolicies()

    async def warm_up(self) -> None:
        """Load lazy parts (the cache's model, litellm) before runs: importing them while
        workflows run would race the workflow sandbox's import hooks."""
        await self._cache.lookup(WARM_UP_TENANT, "warm up the plan cache")
        warm = getattr(self._planner, "warm_up", None)
        if warm is not None:
            await warm()

    async def plan(
        self, run: RunIds, goal: str, context: Mapping[str, str], *, llm_allowed: bool = True
    ) -> MadePlan:
        """A validated plan for ``goal`` under the tenant's risk policy; raises
        ``PlanInvalid`` or ``PlannerUnavailable``. Without ``llm_allowed`` (the tenant's
        tier lacks the LLM planner) the rules plan, as with the kill switch."""
        made = await self._plan(run, goal, context, llm_allowed)
        policy = self._policies.of(run.tenant_id)
        return replace(made, steps=tuple(with_policy_risk(s, policy) for s in made.steps))

    async def _plan(
        self, run: RunIds, goal: str, context: Mapping[str, str], llm_allowed: bool
    ) -> MadePlan:
        lookup = await self._cache.lookup(run.tenant_id, goal)
        plan_looked_up(self._cache, lookup.hit is not None, hasattr(self._planner, "model"))
        known = self._tools.compensations()
        if lookup.hit is not None:
            hit = lookup.hit
            steps = validate_plan(_as_raw(hit.steps), known)
            return MadePlan(
                steps, f"cache:{hit.model}", True, hit.similarity, hit.template, dict(lookup.slots)
            )
        planner = self._planner
        if planner is not self._fallback and (
            not llm_allowed or await self._switches.is_engaged(LLM_PLANNER)
        ):
            planner = self._fallback
        request = PlanRequest(run.run_id, run.tenant_id, goal, self._tools.describe(), context)
        raw = await planner.propose(request)
        name = getattr(planner, "model", planner.name)
        return MadePlan(
            validate_plan(raw, known), str(name), False, None, lookup.template, dict(lookup.slots)
        )


def with_policy_risk(step: PlanStep, policy: RiskPolicy) -> PlanStep:
    """``step`` with at least the risk ``policy`` gives its tool and arguments."""
    floor = find(step_text(step.tool, step.arguments_json), policy).step_risk
    return step if step.risk >= floor else replace(step, risk=floor)


def _as_raw(steps: tuple[PlanStep, ...]) -> dict[str, object]:
    return {
        "steps": [
            {
                "id": s.step_id,
                "tool": s.tool,
                "arguments": json.loads(s.arguments_json),
                "depends_on": list(s.depends_on),
                "risk": s.risk,
                "timeout_s": s.timeout_s,
                "max_attempts": s.max_attempts,
            }
            for s in steps
        ]
    }
