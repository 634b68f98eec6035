"""The step activities: run a step's tool, record failures, compensate."""

from __future__ import annotations

import json
import time

from temporalio import activity
from temporalio.exceptions import ApplicationError

from domain.events import (
    StepCompensated,
    StepCompensationFailed,
    StepCompleted,
    StepFailed,
    StepStarted,
)
from domain.killswitch import tool_feature
from sagas import messages as m
from sagas.activity_base import ActivityBase, heartbeating
from sagas.compensation import UNKNOWN_DETAIL, attempt_mark, unknown_before
from sagas.plan import PlanInvalid, resolve_arguments
from sagas.tools import ToolDomainError
from sagas.tools.base import ToolOutcomeUnknown


class StepActivities(ActivityBase):
    """Activities that touch the world through tools, one step at a time."""

    @activity.defn(name="run_step")
    async def run_step(self, inp: m.StepInput) -> m.StepOutput:
        """Run one step's tool once per attempt, appending started and completed/failed."""
        attempt = activity.info().attempt
        step, run = inp.step, inp.run
        earlier = unknown_before(activity.info().heartbeat_details)
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
            arguments, result = await self._invoke(inp, attempt, earlier)
        except Exception as exc:  # a tool's error, or a bug in one: report it
            unknown = earlier or isinstance(exc, ToolOutcomeUnknown)
            # Told to the next attempt: this one ended, and how much is known.
            activity.heartbeat(attempt_mark(attempt, False, unknown))
            raise await self._step_failed(inp, attempt, exc, unknown) from exc
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
            step_id=step.step_id,
            result_json=result_json,
            attempt=attempt,
            arguments_json=json.dumps(arguments, sort_keys=True),
        )

    async def _invoke(
        self, inp: m.StepInput, attempt: int, earlier: bool
    ) -> tuple[object, dict[str, object]]:
        step = inp.step
        if await self._switches.is_engaged(tool_feature(step.tool)):
            raise ToolDomainError(f"kill switch engaged for tool {step.tool!r}")
        tool = self._tools.get(step.tool)
        inputs = {k: json.loads(v) for k, v in inp.inputs.items()}
        arguments = resolve_arguments(json.loads(step.arguments_json), inputs)
        if not isinstance(arguments, dict):
            raise ToolDomainError("step arguments must be a JSON object")
        mark = (attempt_mark(attempt, True, earlier),)
        call = self._call(inp.run, step.step_id, attempt, arguments, inputs, mark)
        async with heartbeating(*mark):
            result = await tool.run(call)
        return arguments, result

    async def _step_failed(
        self, inp: m.StepInput, attempt: int, exc: Exception, unknown: bool = False
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
        details = [{UNKNOWN_DETAIL: True}] if unknown else []
        return ApplicationError(
            str(exc)[:2000], *details, type=type(exc).__name__, non_retryable=not retryable
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
        """Undo one step; after the last attempt, record that it could not be.

        A step of unknown outcome (see :mod:`sagas.compensation`) hands its tool no
        result. Either way the event says which it was: ``step_compensated`` carries
        ``"step_outcome"`` in its ``result_json``, a failed undo names it in its message.
        """
        attempt = activity.info().attempt
        step = inp.step
        step_result = json.loads(step.result_json) if step.outcome == m.COMPLETED else None
        call = self._call(inp.run, step.step_id, attempt, json.loads(step.arguments_json), {})
        try:
            async with heartbeating():
                result = await self._tools.get(step.tool).compensate(call, step_result)
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
                    (_unknown_note(step) + f"{type(exc).__name__}: {exc}")[:2000],
                )
            )
            return m.CompensateOutput(step.step_id, False, str(exc)[:500])
        await self._append(
            StepCompensated(
                self._envelope(StepCompensated, inp.run, step.step_id),
                step.step_id,
                step.tool,
                inp.compensation,
                json.dumps({**result, "step_outcome": step.outcome}, sort_keys=True, default=str),
            )
        )
        return m.CompensateOutput(step.step_id, True)


def _unknown_note(step: m.CompletedStep) -> str:
    return "" if step.outcome == m.COMPLETED else f"step outcome {step.outcome}; "
