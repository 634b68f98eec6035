"""``AgentWorkflow``: one run as a saga. Deterministic: every effect is an activity.

assess -> plan -> execute the plan as a DAG (independent steps concurrently; a risky
step first waits for an approval signal) -> on a final failure, denial or cancel
request, compensate in reverse order the steps that completed and those whose outcome is
unknown (started, then cancelled or abandoned before a result: see
:mod:`sagas.compensation`) -> the terminal event. Long runs continue-as-new between
steps, carrying their state.

Change this code only behind ``workflow.patched()``: ``tests/unit/test_saga_replay.py``
replays recorded histories and fails on a non-deterministic change.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, replace
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain import ids
    from domain.approval_view import WITHDRAWN_BY
    from sagas import messages as m
    from sagas.activities import SagaActivities
    from sagas.compensation import says_unknown, to_undo, unknown_outcome
    from sagas.options import COMPENSATE, COMPENSATION_ATTEMPTS, EMIT, PLAN, emit, step_options
    from sagas.plan import ready_steps

WORKFLOW_NAME = "AgentWorkflow"
# Runs started before it compensated completed steps only, also when one was in flight.
UNDO_UNKNOWN_PATCH = "compensate-unknown-outcomes"
# Runs started before it left a sibling's approval pending after a step failed for good.
WITHDRAW_PATCH = "withdraw-approvals-on-failure"
# Runs started before it did not undo a failed step one of whose attempts timed out.
UNKNOWN_ATTEMPTS_PATCH = "compensate-unknown-attempts"


@dataclass
class _Outcome:
    step_id: str
    completed: m.CompletedStep | None = None
    error: str = ""


@workflow.defn(name=WORKFLOW_NAME)
class AgentWorkflow:
    """A run: the workflow id is the run id, so a redelivered goal starts nothing twice."""

    def __init__(self) -> None:
        self._decisions: dict[str, m.ApprovalDecision] = {}
        self._cancel: m.CancelRequest | None = None
        self._unknown: dict[str, m.CompletedStep] = {}  # step id -> its stack entry
        self._phase = "starting"
        self._requester = ""
        self._required: dict[str, int] = {}  # approval id -> distinct grants it needs
        self._grants: dict[str, list[str]] = {}  # approval id -> who granted so far
        self._approving: set[str] = set()  # steps between asking and an answer
        self._awaiting: dict[str, asyncio.Task[_Outcome]] = {}  # step id -> its task
        self._withdrawing = ""  # why pending approvals are withdrawn, once they are

    @workflow.signal(name="approval_decided")
    def approval_decided(self, decision: m.ApprovalDecision) -> None:
        """A decision; a denial or the last grant the quorum needs is final, the first
        final one wins. The run's requester never counts (the API refuses it first)."""
        if decision.granted and self._requester and decision.approver == self._requester:
            return
        need = self._required.get(decision.approval_id, 1)
        if decision.granted and need > 1:
            grants = self._grants.setdefault(decision.approval_id, [])
            if decision.approver not in grants:
                grants.append(decision.approver)
            if len(grants) < need:
                return
            decision = replace(decision, approver=", ".join(grants))
        self._decisions.setdefault(decision.approval_id, decision)

    @workflow.signal(name="cancel_requested")
    def cancel_requested(self, request: m.CancelRequest) -> None:
        """Stop scheduling steps, cancel those in flight and roll back what they did."""
        if self._cancel is None:
            self._cancel = request

    @workflow.query(name="phase")
    def phase(self) -> str:
        return self._phase

    @workflow.run
    async def run(self, inp: m.RunInput) -> m.RunResult:
        self._requester = inp.requested_by
        if inp.carried is None:
            prepared = await self._prepare(inp)
            if isinstance(prepared, m.RunResult):
                return prepared
            state = prepared
        else:
            state = inp.carried
            for decision in state.decisions:
                self._decisions.setdefault(decision.approval_id, decision)
        return await self._execute(inp, state)

    async def _prepare(self, inp: m.RunInput) -> m.CarriedState | m.RunResult:
        started_ms = _ms_now()
        self._phase = "assessing"
        assessed = await emit(
            SagaActivities.assess_goal,
            m.AssessInput(m.RunRef(inp.run_id, inp.tenant_id, inp.goal_event_id), inp.goal),
        )
        fresh = m.CarriedState(
            plan_id="", steps=[], plan_event_id=assessed.event_id, started_at_ms=started_ms
        )
        if not assessed.allowed:
            return await self._fail(inp, fresh, "refused: " + "; ".join(assessed.reasons))
        self._phase = "planning"
        try:
            plan = await workflow.execute_activity_method(
                SagaActivities.make_plan,
                m.PlanInput(
                    m.RunRef(inp.run_id, inp.tenant_id, assessed.event_id),
                    assessed.sanitized_goal,
                    inp.context,
                    # The activity's input is not compared on replay: adding these
                    # changes no command, so old histories replay unpatched.
                    tier=inp.policy.tier,
                    max_steps=inp.policy.max_plan_steps,
                    llm_planner=inp.policy.llm_planner,
                ),
                **PLAN,
            )
        except ActivityError as exc:
            return await self._fail(inp, fresh, f"planner_unavailable: {_cause(exc)}")
        if plan.error:
            return await self._fail(inp, fresh, plan.error)
        return m.CarriedState(
            plan_id=plan.plan_id,
            steps=plan.steps,
            plan_event_id=plan.event_id,
            started_at_ms=started_ms,
        )

    async def _execute(self, inp: m.RunInput, state: m.CarriedState) -> m.RunResult:
        self._phase = "running"
        failure = await self._run_dag(inp, state)
        if self._cancel is not None or failure is not None:
            compensated = await self._compensate(inp, state)
            if self._cancel is not None:
                return await self._finish_cancelled(inp, state, compensated)
            assert failure is not None
            reason = f"step {failure.step_id} failed: {failure.error}"
            return await self._fail(inp, state, reason, failure.step_id, compensated)
        if len(state.completed) < len(state.steps):
            # Drained for continue-as-new: nothing is in flight, the state is complete.
            state.decisions = list(self._decisions.values())
            workflow.continue_as_new(
                replace(inp, carried=replace(state, generation=state.generation + 1))
            )
        return await self._complete(inp, state)

    async def _run_dag(self, inp: m.RunInput, state: m.CarriedState) -> _Outcome | None:
        """Run ready steps concurrently until done, failed, cancelled or due to roll over."""
        tasks: dict[str, asyncio.Task[_Outcome]] = {}
        failure: _Outcome | None = None
        cancelled = False
        cancel_seen = asyncio.ensure_future(
            workflow.wait_condition(lambda: self._cancel is not None)
        )
        while True:
            if failure is None and self._cancel is None and not self._roll_over_due(inp):
                done_ids = [c.step_id for c in state.completed]
                for step in ready_steps(state.steps, done_ids, tasks):
                    tasks[step.step_id] = asyncio.create_task(self._run_step(inp, state, step))
            if not tasks:
                break
            if self._cancel is not None and not cancelled:
                cancelled = True
                if self._approving:
                    self._withdraw(f"run cancelled: {self._cancel.reason}")
                for step_id, task in tasks.items():
                    if not (self._withdrawing and step_id in self._awaiting):
                        task.cancel()  # a withdrawn approval's task was cancelled once
            waiting: list[asyncio.Future[object]] = list(tasks.values())  # type: ignore[arg-type]
            if not cancel_seen.done():
                waiting.append(cancel_seen)  # type: ignore[arg-type]
            await workflow.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            for step_id, task in list(tasks.items()):
                if task.done():
                    del tasks[step_id]
                    outcome = None if task.cancelled() else task.result()
                    if outcome is not None and outcome.completed is not None:
                        state.completed.append(outcome.completed)
                    elif outcome is not None and failure is None:
                        failure = outcome
                    if step_id in self._unknown:  # pushed as its outcome settled
                        state.completed.append(self._unknown.pop(step_id))
            if failure is not None and not self._withdrawing and self._approving:
                self._withdraw(f"step {failure.step_id} failed: {failure.error}")
        cancel_seen.cancel()
        return failure

    def _withdraw(self, why: str) -> None:
        """Stop waiting for the approvals still pending: the run will not use them."""
        if workflow.patched(WITHDRAW_PATCH):
            self._withdrawing = why
            for task in self._awaiting.values():
                task.cancel()

    def _roll_over_due(self, inp: m.RunInput) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() >= inp.policy.history_limit
        )

    async def _run_step(self, inp: m.RunInput, state: m.CarriedState, step: m.WireStep) -> _Outcome:
        ref = m.RunRef(inp.run_id, inp.tenant_id, state.plan_event_id)
        if step.risk > inp.policy.approval_threshold:
            decision = await self._approval(inp, ref, state, step)
            if decision.approver == WITHDRAWN_BY:
                return _Outcome(step.step_id, error=f"approval withdrawn: {decision.reason}")
            if not decision.granted:
                why = "timed out" if decision.timed_out else f"denied by {decision.approver}"
                message = f"approval {why}" + (f": {decision.reason}" if decision.reason else "")
                await self._record_failure(ref, step, "ApprovalDenied", message)
                return _Outcome(step.step_id, error=message)
        results = {c.step_id: c.result_json for c in state.completed}
        step_input = m.StepInput(ref, step, {d: results[d] for d in step.depends_on})
        try:
            out = await workflow.execute_activity_method(
                SagaActivities.run_step,
                step_input,
                **step_options(step),
            )
        except ActivityError as exc:
            if not isinstance(exc.cause, ApplicationError):
                # Cancelled, timed out, worker lost: the activity never got to say how it
                # ended, so the tool may have had its effect. Noted before the next await,
                # which a cancel request may interrupt.
                if (entry := unknown_outcome(step_input)) is not None:
                    self._unknown[step.step_id] = entry
                await self._record_failure(ref, step, type(exc.cause).__name__, _cause(exc))
            elif (
                says_unknown(exc.cause.details)
                and workflow.patched(UNKNOWN_ATTEMPTS_PATCH)
                and (entry := unknown_outcome(step_input)) is not None
            ):
                # It reported a failure, but an attempt before (or its own call) may have
                # acted: a read timeout, an attempt timed out or lost with its worker.
                self._unknown[step.step_id] = entry
            return _Outcome(step.step_id, error=_cause(exc))
        done = m.CompletedStep(
            step_id=step.step_id,
            tool=step.tool,
            arguments_json=out.arguments_json,
            result_json=out.result_json,
        )
        return _Outcome(step.step_id, completed=done)

    async def _approval(
        self, inp: m.RunInput, ref: m.RunRef, state: m.CarriedState, step: m.WireStep
    ) -> m.ApprovalDecision:
        approval_id = ids.derive_id("approval", inp.run_id, step.step_id)
        if approval_id in self._decisions:
            return self._decisions[approval_id]
        timeout = timedelta(seconds=inp.policy.approval_timeout_s)
        threshold = inp.policy.approval_threshold
        policy = inp.policy
        required = policy.approvers if step.risk > policy.approvers_above_risk else 1
        self._required[approval_id] = max(1, required)
        self._approving.add(step.step_id)
        results = {c.step_id: c.result_json for c in state.completed}
        request = m.ApprovalInput(
            run=ref,
            approval_id=approval_id,
            step=step,
            reasons=[f"step risk {step.risk} exceeds the approval threshold {threshold}"],
            expires_at_ms=_ms_now() + int(timeout.total_seconds() * 1000),
            goal=inp.goal,
            requested_by=inp.requested_by,
            inputs={d: results[d] for d in step.depends_on if d in results},
            required_approvals=self._required[approval_id],
        )
        await workflow.execute_activity_method(
            SagaActivities.request_approval,
            request,
            **EMIT,
        )
        if self._withdrawing:  # the run failed while the request was being appended
            return await self._withdrawn(ref, approval_id, step)
        self._phase = "awaiting_approval"
        task = asyncio.current_task()
        if task is not None:
            self._awaiting[step.step_id] = task
        try:
            await workflow.wait_condition(lambda: approval_id in self._decisions, timeout=timeout)
        except asyncio.CancelledError:
            if not self._withdrawing:
                raise
            return await self._withdrawn(ref, approval_id, step)
        except TimeoutError:
            await workflow.execute_activity_method(
                SagaActivities.record_approval_timeout,
                m.ApprovalTimeoutInput(ref, approval_id, step.step_id),
                **EMIT,
            )
            self._decisions.setdefault(
                approval_id,
                m.ApprovalDecision(
                    approval_id=approval_id,
                    step_id=step.step_id,
                    granted=False,
                    approver="system:timeout",
                    timed_out=True,
                ),
            )
        finally:
            self._awaiting.pop(step.step_id, None)
            self._approving.discard(step.step_id)
        self._phase = "running"
        return self._decisions[approval_id]

    async def _withdrawn(
        self, ref: m.RunRef, approval_id: str, step: m.WireStep
    ) -> m.ApprovalDecision:
        self._approving.discard(step.step_id)
        await workflow.execute_activity_method(
            SagaActivities.record_approval_withdrawn,
            m.ApprovalWithdrawnInput(ref, approval_id, step.step_id, self._withdrawing),
            **EMIT,
        )
        decision = m.ApprovalDecision(
            approval_id=approval_id,
            step_id=step.step_id,
            granted=False,
            approver=WITHDRAWN_BY,
            reason=self._withdrawing,
        )
        self._decisions.setdefault(approval_id, decision)
        return decision

    async def _record_failure(
        self, ref: m.RunRef, step: m.WireStep, kind: str, message: str
    ) -> None:
        await workflow.execute_activity_method(
            SagaActivities.record_step_failure,
            m.StepFailureInput(run=ref, step=step, error_type=kind, message=message),
            **EMIT,
        )

    async def _compensate(self, inp: m.RunInput, state: m.CarriedState) -> list[str]:
        """Undo the stack, last settled first; return the step ids undone."""
        self._phase = "compensating"
        ref = m.RunRef(inp.run_id, inp.tenant_id, state.plan_event_id)
        undo = {s.step_id: s.compensation or "noop" for s in state.steps}
        unknown = any(s.outcome != m.COMPLETED for s in state.completed)
        compensated = []
        for done in to_undo(state.completed, unknown and workflow.patched(UNDO_UNKNOWN_PATCH)):
            out = await workflow.execute_activity_method(
                SagaActivities.compensate_step,
                m.CompensateInput(
                    run=ref,
                    step=done,
                    compensation=undo.get(done.step_id, "noop"),
                    max_attempts=COMPENSATION_ATTEMPTS,
                ),
                **COMPENSATE,
            )
            if out.compensated:
                compensated.append(out.step_id)
        return compensated

    async def _complete(self, inp: m.RunInput, state: m.CarriedState) -> m.RunResult:
        results = {c.step_id: c.result_json for c in state.completed}
        summary = json.dumps({k: json.loads(v) for k, v in results.items()}, sort_keys=True)
        await self._emit_finish(
            inp,
            state,
            m.FinishInput(
                run=_ref(inp, state),
                status="completed",
                duration_ms=0,
                step_count=len(state.steps),
                result_json=summary,
            ),
        )
        self._phase = "completed"
        return m.RunResult(run_id=inp.run_id, status="completed", results=results)

    async def _fail(
        self,
        inp: m.RunInput,
        state: m.CarriedState,
        reason: str,
        failed_step_id: str | None = None,
        compensated: list[str] | None = None,
    ) -> m.RunResult:
        done = compensated or []
        finish = m.FinishInput(
            run=_ref(inp, state),
            status="failed",
            duration_ms=0,
            reason=reason,
            failed_step_id=failed_step_id,
            compensated_step_ids=done,
        )
        await self._emit_finish(inp, state, finish)
        self._phase = "failed"
        return m.RunResult(
            run_id=inp.run_id,
            status="failed",
            reason=reason,
            failed_step_id=failed_step_id,
            compensated_step_ids=done,
        )

    async def _finish_cancelled(
        self, inp: m.RunInput, state: m.CarriedState, compensated: list[str]
    ) -> m.RunResult:
        assert self._cancel is not None
        reason, by = self._cancel.reason, self._cancel.requested_by
        finish = m.FinishInput(
            run=_ref(inp, state),
            status="cancelled",
            duration_ms=0,
            reason=reason,
            compensated_step_ids=compensated,
            cancelled_by=by,
        )
        await self._emit_finish(inp, state, finish)
        self._phase = "cancelled"
        return m.RunResult(
            run_id=inp.run_id, status="cancelled", reason=reason, compensated_step_ids=compensated
        )

    async def _emit_finish(
        self, inp: m.RunInput, state: m.CarriedState, finish: m.FinishInput
    ) -> None:
        finish.duration_ms = max(0, _ms_now() - state.started_at_ms)
        await emit(SagaActivities.finish_run, finish)


def _ref(inp: m.RunInput, state: m.CarriedState) -> m.RunRef:
    return m.RunRef(inp.run_id, inp.tenant_id, state.plan_event_id or None)


def _ms_now() -> int:
    return int(workflow.now().timestamp() * 1000)


def _cause(exc: ActivityError) -> str:
    cause = exc.cause
    if cause is None:
        return str(exc)
    return (
        f"{type(cause).__name__}: {cause}"
        if not isinstance(cause, ApplicationError)
        else f"{cause.type}: {cause.message}"
    )
