"""The saga's activities: every effect of a run, each appending its events to Kafka.

The run lifecycle lives here (guardian, plan, approvals, the terminal event); the step
activities in :mod:`sagas.step_activities`; shared plumbing in :mod:`sagas.activity_base`.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

from temporalio import activity

from domain import ids
from domain.approval_context import compensation_effect, redact, redacted_json
from domain.approval_view import WITHDRAWN_BY
from domain.events import (
    ApprovalDenied,
    ApprovalRequested,
    Event,
    GoalAssessed,
    PlanGenerated,
    RunCancelled,
    RunCompleted,
    RunFailed,
)
from domain.killswitch import RUNS
from domain.risk_policy import find, step_text
from domain.tier_rules import too_many_steps
from sagas import messages as m
from sagas.activity_base import to_wire
from sagas.guardian import assess
from sagas.plan import PlanInvalid
from sagas.step_activities import StepActivities


class SagaActivities(StepActivities):
    """Every activity of ``AgentWorkflow``, as methods of one object handed its clients."""

    @activity.defn(name="assess_goal")
    async def assess_goal(self, inp: m.AssessInput) -> m.AssessOutput:
        """Guardian check: sanitise, score and apply the ``runs`` kill switch."""
        engaged = [RUNS] if await self._switches.is_engaged(RUNS) else []
        guardian = replace(self._guardian, risk=self._policies.of(inp.run.tenant_id))
        verdict = assess(inp.goal, guardian, engaged)
        event = GoalAssessed(
            self._envelope(GoalAssessed, inp.run),
            verdict.sanitized_goal,
            verdict.risk_score,
            verdict.reasons,
            verdict.allowed,
        )
        await self._append(event)
        return m.AssessOutput(
            sanitized_goal=verdict.sanitized_goal,
            risk_score=verdict.risk_score,
            reasons=list(verdict.reasons),
            allowed=verdict.allowed,
            event_id=event.envelope.event_id,
        )

    @activity.defn(name="make_plan")
    async def make_plan(self, inp: m.PlanInput) -> m.PlanOutput:
        """Cache lookup, then the planner; a valid plan is appended as ``plan_generated``."""
        plan_id = ids.derive_id("plan", inp.run.run_id)
        try:
            made = await self._plans.plan(
                inp.run, inp.goal, inp.context, llm_allowed=inp.llm_planner
            )
        except PlanInvalid as exc:
            return m.PlanOutput(
                plan_id=plan_id, steps=[], planner="", event_id="", error=f"plan_invalid: {exc}"
            )
        over = too_many_steps(len(made.steps), inp.max_steps, inp.tier)
        if over is not None:  # the run fails with this cause; the plan is not recorded
            return m.PlanOutput(plan_id=plan_id, steps=[], planner="", event_id="", error=over)
        event = PlanGenerated(
            self._envelope(PlanGenerated, inp.run),
            plan_id,
            made.steps,
            made.planner,
            made.from_cache,
            made.similarity,
            made.template,
            dict(made.slots),
        )
        await self._append(event)
        steps = [to_wire(s) for s in made.steps]
        return m.PlanOutput(
            plan_id=plan_id, steps=steps, planner=made.planner, event_id=event.envelope.event_id
        )

    @activity.defn(name="request_approval")
    async def request_approval(self, inp: m.ApprovalInput) -> m.Emitted:
        """Append ``approval_requested`` with what is being approved (personal values
        redacted); the decision arrives later as a signal."""
        expires = datetime.fromtimestamp(inp.expires_at_ms / 1000, UTC)
        step = inp.step
        policy = self._policies.of(inp.run.tenant_id)
        found = find(step_text(step.tool, step.arguments_json), policy)
        arguments = json.loads(step.arguments_json)
        inputs = {k: json.loads(v) for k, v in inp.inputs.items()}
        event = ApprovalRequested(
            self._envelope(ApprovalRequested, inp.run, inp.approval_id),
            inp.approval_id,
            step.step_id,
            step.tool,
            step.risk,
            tuple(inp.reasons) + tuple(r for r in found.reasons if r not in inp.reasons),
            expires,
            goal=inp.goal[:2000],
            requested_by=inp.requested_by,
            arguments_json=redacted_json(step.arguments_json),
            inputs_json=json.dumps(redact(inputs), sort_keys=True),
            compensation=compensation_effect(step.tool, step.compensation, arguments),
            required_approvals=inp.required_approvals,
        )
        await self._append(event)
        return m.Emitted(event.envelope.event_id)

    @activity.defn(name="record_approval_withdrawn")
    async def record_approval_withdrawn(self, inp: m.ApprovalWithdrawnInput) -> m.Emitted:
        """Append the ``approval_denied`` that withdraws a request the run no longer needs."""
        event = ApprovalDenied(
            self._envelope(ApprovalDenied, inp.run, inp.approval_id, "withdrawn"),
            inp.approval_id,
            inp.step_id,
            WITHDRAWN_BY,
            f"withdrawn: {inp.reason}"[:2000],
            False,
        )
        await self._append(event)
        return m.Emitted(event.envelope.event_id)

    @activity.defn(name="record_approval_timeout")
    async def record_approval_timeout(self, inp: m.ApprovalTimeoutInput) -> m.Emitted:
        """Append the ``approval_denied`` (timed out) that nobody decided in time."""
        event = ApprovalDenied(
            self._envelope(ApprovalDenied, inp.run, inp.approval_id, "timeout"),
            inp.approval_id,
            inp.step_id,
            "system:timeout",
            "no decision before the approval expired",
            True,
        )
        await self._append(event)
        return m.Emitted(event.envelope.event_id)

    @activity.defn(name="finish_run")
    async def finish_run(self, inp: m.FinishInput) -> m.Emitted:
        """Append the run's terminal event."""
        run, compensated = inp.run, tuple(inp.compensated_step_ids)
        event: Event
        if inp.status == "completed":
            event = RunCompleted(
                self._envelope(RunCompleted, run), inp.step_count, inp.duration_ms, inp.result_json
            )
        elif inp.status == "cancelled":
            event = RunCancelled(
                self._envelope(RunCancelled, run), inp.reason, inp.cancelled_by, compensated
            )
        else:
            event = RunFailed(
                self._envelope(RunFailed, run),
                inp.reason,
                inp.failed_step_id,
                compensated,
                inp.duration_ms,
            )
        await self._append(event)
        return m.Emitted(event.envelope.event_id)
