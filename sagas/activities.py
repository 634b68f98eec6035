"""The saga's activities: every effect of a run, each appending its events to Kafka.

Event ids are derived from the run, the fact and a discriminator (step id, attempt,
approval id), never from time, so a retried activity appends records that downstream
consumers recognise as the same facts. Tool effects carry the idempotency key
``<run_id>:<step_id>``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from temporalio import activity
from temporalio.exceptions import ApplicationError

from domain import ids
from domain.events import (
    ApprovalDenied,
    ApprovalRequested,
    Envelope,
    Event,
    GoalAssessed,
    PlanGenerated,
    PlanStep,
    RunCancelled,
    RunCompleted,
    RunFailed,
    StepCompensated,
    StepCompensationFailed,
    StepCompleted,
    StepFailed,
    StepStarted,
)
from sagas import messages as m
from sagas.guardian import GuardianPolicy, assess
from sagas.killswitch import RUNS, KillSwitches, tool_feature
from sagas.plan import PlanInvalid, resolve_arguments
from sagas.plan_source import PlanSource
from sagas.tools import ToolCall, ToolDomainError, ToolError, ToolRegistry
from streams.producer import EventAppender

ACTOR = "saga"
HEARTBEAT_EVERY_S = 2.0


def idempotency_key(run_id: str, step_id: str) -> str:
    """The key every effect of one step carries, across attempts and workers."""
    return f"{run_id}:{step_id}"


class SagaActivities:
    """The activities, as methods of one object handed its clients by the worker."""

    def __init__(
        self,
        appender: EventAppender,
        tools: ToolRegistry,
        plans: PlanSource,
        kill_switches: KillSwitches,
        guardian: GuardianPolicy | None = None,
    ) -> None:
        self._appender = appender
        self._tools = tools
        self._plans = plans
        self._switches = kill_switches
        self._guardian = guardian or GuardianPolicy()

    @activity.defn(name="assess_goal")
    async def assess_goal(self, inp: m.AssessInput) -> m.AssessOutput:
        """Guardian check: sanitise, score and apply the ``runs`` kill switch."""
        engaged = [RUNS] if await self._switches.is_engaged(RUNS, inp.run.tenant_id) else []
        verdict = assess(inp.goal, self._guardian, engaged)
        event = GoalAssessed(
            self._envelope(GoalAssessed, inp.run),
            verdict.sanitized_goal,
            verdict.risk_score,
            verdict.reasons,
            verdict.allowed,
        )
        await self._append(event)
        return m.AssessOutput(
            verdict.sanitized_goal,
            verdict.risk_score,
            list(verdict.reasons),
            verdict.allowed,
            event.envelope.event_id,
        )

    @activity.defn(name="make_plan")
    async def make_plan(self, inp: m.PlanInput) -> m.PlanOutput:
        """Cache lookup, then the planner; a valid plan is appended as ``plan_generated``."""
        plan_id = ids.derive_id("plan", inp.run.run_id)
        try:
            made = await self._plans.plan(inp.run, inp.goal, inp.context)
        except PlanInvalid as exc:
            return m.PlanOutput(plan_id, [], "", "", error=f"plan_invalid: {exc}")
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
        return m.PlanOutput(plan_id, steps, made.planner, event.envelope.event_id)

    @activity.defn(name="run_step")
    async def run_step(self, inp: m.StepInput) -> m.StepOutput:
        """Run one step's tool once per attempt, appending started and completed/failed."""
        attempt = activity.info().attempt
        step, run = inp.step, inp.run
        await self._append(
            StepStarted(
                self._envelope(StepStarted, run, step.step_id, attempt),
                step.step_id,
                step.tool,
                attempt,
            )
        )
        started = time.monotonic()
        try:
            arguments, result = await self._invoke(inp, attempt)
        except (ToolError, PlanInvalid) as exc:
            raise await self._step_failed(inp, attempt, exc) from exc
        except Exception as exc:  # an unexpected bug in a tool: report it, let Temporal retry
            raise await self._step_failed(inp, attempt, exc) from exc
        result_json = json.dumps(result, sort_keys=True, default=str)
        duration_ms = int((time.monotonic() - started) * 1000)
        await self._append(
            StepCompleted(
                self._envelope(StepCompleted, run, step.step_id),
                step.step_id,
                step.tool,
                attempt,
                result_json,
                duration_ms,
            )
        )
        return m.StepOutput(
            step.step_id, result_json, attempt, json.dumps(arguments, sort_keys=True)
        )

    async def _invoke(self, inp: m.StepInput, attempt: int) -> tuple[object, dict[str, object]]:
        step = inp.step
        if await self._switches.is_engaged(tool_feature(step.tool), inp.run.tenant_id):
            raise ToolDomainError(f"kill switch engaged for tool {step.tool!r}")
        tool = self._tools.get(step.tool)
        inputs = {k: json.loads(v) for k, v in inp.inputs.items()}
        arguments = resolve_arguments(json.loads(step.arguments_json), inputs)
        if not isinstance(arguments, dict):
            raise ToolDomainError("step arguments must be a JSON object")
        call = self._call(inp.run, step.step_id, attempt, arguments, inputs)
        async with _heartbeating():
            result = await tool.run(call)
        return arguments, result

    async def _step_failed(
        self, inp: m.StepInput, attempt: int, exc: Exception
    ) -> ApplicationError:
        retryable = getattr(exc, "retryable", not isinstance(exc, PlanInvalid))
        final = not retryable or attempt >= inp.step.max_attempts
        step = inp.step
        await self._append(
            StepFailed(
                self._envelope(StepFailed, inp.run, step.step_id, attempt),
                step.step_id,
                step.tool,
                attempt,
                type(exc).__name__,
                str(exc)[:2000],
                retryable,
                final,
            )
        )
        return ApplicationError(
            str(exc)[:2000], type=type(exc).__name__, non_retryable=not retryable
        )

    @activity.defn(name="record_step_failure")
    async def record_step_failure(self, inp: m.StepFailureInput) -> m.Emitted:
        """A final ``step_failed`` for what the step could not report (timeout, denial)."""
        step = inp.step
        event = StepFailed(
            self._envelope(StepFailed, inp.run, step.step_id, "final"),
            step.step_id,
            step.tool,
            0,
            inp.error_type,
            inp.message[:2000],
            False,
            True,
        )
        await self._append(event)
        return m.Emitted(event.envelope.event_id)

    @activity.defn(name="compensate_step")
    async def compensate_step(self, inp: m.CompensateInput) -> m.CompensateOutput:
        """Undo one completed step; after the last attempt, record that it could not be."""
        attempt = activity.info().attempt
        step = inp.step
        call = self._call(inp.run, step.step_id, attempt, json.loads(step.arguments_json), {})
        try:
            async with _heartbeating():
                result = await self._tools.get(step.tool).compensate(
                    call, json.loads(step.result_json)
                )
        except Exception as exc:
            retryable = getattr(exc, "retryable", True)
            if retryable and attempt < inp.max_attempts:
                raise ApplicationError(str(exc), type=type(exc).__name__) from exc
            await self._append(
                StepCompensationFailed(
                    self._envelope(StepCompensationFailed, inp.run, step.step_id),
                    step.step_id,
                    step.tool,
                    inp.compensation,
                    f"{type(exc).__name__}: {exc}"[:2000],
                )
            )
            return m.CompensateOutput(step.step_id, False, str(exc)[:500])
        await self._append(
            StepCompensated(
                self._envelope(StepCompensated, inp.run, step.step_id),
                step.step_id,
                step.tool,
                inp.compensation,
                json.dumps(result, sort_keys=True, default=str),
            )
        )
        return m.CompensateOutput(step.step_id, True)

    @activity.defn(name="request_approval")
    async def request_approval(self, inp: m.ApprovalInput) -> m.Emitted:
        """Append ``approval_requested``; the decision arrives later as a signal."""
        expires = datetime.fromtimestamp(inp.expires_at_ms / 1000, UTC)
        event = ApprovalRequested(
            self._envelope(ApprovalRequested, inp.run, inp.approval_id),
            inp.approval_id,
            inp.step.step_id,
            inp.step.tool,
            inp.step.risk,
            tuple(inp.reasons),
            expires,
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

    def _call(
        self,
        run: m.RunRef,
        step_id: str,
        attempt: int,
        arguments: dict[str, object],
        inputs: dict[str, object],
    ) -> ToolCall:
        return ToolCall(
            run_id=run.run_id,
            tenant_id=run.tenant_id,
            step_id=step_id,
            attempt=attempt,
            idempotency_key=idempotency_key(run.run_id, step_id),
            arguments=arguments,
            inputs=inputs,
            heartbeat=activity.heartbeat,
        )

    def _envelope(self, cls: type[Event], run: m.RunRef, *discriminator: str | int) -> Envelope:
        return ids.envelope(
            cls,
            run_id=run.run_id,
            tenant_id=run.tenant_id,
            actor=ACTOR,
            correlation_id=run.run_id,
            causation_id=run.causation_id,
            discriminator=discriminator,
        )

    async def _append(self, event: Event) -> None:
        # LogUnavailable propagates: the activity is retried and appends the same ids.
        await self._appender.append(event)


def to_wire(step: PlanStep) -> m.WireStep:
    """A plan step as the workflow carries it."""
    return m.WireStep(
        step.step_id,
        step.tool,
        step.arguments_json,
        list(step.depends_on),
        step.risk,
        step.compensation,
        step.timeout_s,
        step.max_attempts,
    )


@asynccontextmanager
async def _heartbeating() -> AsyncIterator[None]:
    """Heartbeat while the body runs, so a lost worker is noticed within the timeout."""

    async def pump() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(HEARTBEAT_EVERY_S)

    task = asyncio.create_task(pump())
    try:
        yield
    finally:
        task.cancel()
