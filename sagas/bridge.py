"""The saga bridge's handler: run events become Temporal workflow starts and signals.

- ``goal_received`` starts ``AgentWorkflow`` with the run id as the workflow id (id reuse
  rejected), so a redelivered goal starts nothing twice. The run's policy carries the
  tenant's tier at the goal's time (its step limit, whether the LLM planner may plan:
  read from the tenant projection through :class:`TierLookup`) and the approval timeout
  its context asked for (the gateway held it to the tier's range);
- ``approval_granted`` / ``approval_denied`` signal ``approval_decided``;
- ``run_cancel_requested`` signals ``cancel_requested``;
- ``subject_erased`` terminates the run's workflow if it is still open: its data key is
  gone, so its history (sealed with that key, :mod:`sagas.payload_codec`) can no longer be
  read, and a worker could not go on with it.

It reaches the log through the one consumer (:mod:`streams.consumer`) as the
``saga-bridge`` subscription of :mod:`streams.topology`. Every command is idempotent, so
the handler is at-least-once: its position is the consumer group's committed offset.
Temporal being unavailable is retried, never skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from domain.entitlements import Effective
from domain.events import (
    ApprovalDenied,
    ApprovalGranted,
    Event,
    GoalReceived,
    RunCancelRequested,
    SubjectErased,
)
from domain.risk_policy import TenantPolicies
from domain.tier_rules import approval_timeout
from omnihub.settings import Settings
from sagas.messages import ApprovalDecision, CancelRequest, RunInput, RunPolicy
from sagas.telemetry import bridging
from sagas.workflow import AgentWorkflow
from streams.consumer import Record

log = logging.getLogger(__name__)

Partition = tuple[str, int]


@dataclass(frozen=True)
class StartRun:
    run: RunInput


@dataclass(frozen=True)
class DecideApproval:
    run_id: str
    decision: ApprovalDecision


@dataclass(frozen=True)
class CancelRun:
    run_id: str
    request: CancelRequest


@dataclass(frozen=True)
class TerminateErased:
    run_id: str
    erasure_id: str

    @property
    def reason(self) -> str:  # no personal data: it stays in the history in the clear
        return f"subject erased (erasure {self.erasure_id}): the run's data key is destroyed"


Command = StartRun | DecideApproval | CancelRun | TerminateErased


def policy_from(settings: Settings) -> RunPolicy:
    """The run policy new runs start with."""
    return RunPolicy(
        settings.approval_threshold, settings.approval_timeout_s, settings.saga_history_limit
    )


class TierLookup(Protocol):
    """A tenant's tier at a time (the tenant projection, in the bridge process)."""

    transient: tuple[type[BaseException], ...]  # its store being down: retried

    async def at(self, tenant_id: str, when: datetime) -> Effective:
        """The tier ``tenant_id`` had at ``when``."""
        ...


def run_policy(
    event: GoalReceived, policy: RunPolicy, policies: TenantPolicies, tier: Effective | None
) -> RunPolicy:
    """A new run's policy: the tenant's approval quorum, tier and asked approval timeout."""
    tenant = policies.of(event.envelope.tenant_id)
    policy = replace(
        policy, approvers=tenant.approvers, approvers_above_risk=tenant.approvers_above_risk
    )
    if tier is not None:
        grants = tier.entitlements
        policy = replace(
            policy,
            tier=tier.tier,
            max_plan_steps=int(grants["max_plan_steps"].value),  # type: ignore[arg-type]
            llm_planner=bool(grants["llm_planner"].value),
        )
    try:
        asked = approval_timeout(dict(event.context))
    except ValueError:
        asked = None  # the gateway refused such goals; an older one keeps the default
    return policy if asked is None else replace(policy, approval_timeout_s=float(asked))


def command_for(
    event: Event,
    policy: RunPolicy,
    policies: TenantPolicies | None = None,
    tier: Effective | None = None,
) -> Command | None:
    """What the workflow side must do about ``event`` (pure); a new run gets its
    tenant's approval quorum from ``policies`` and its entitlements from ``tier``."""
    env = event.envelope
    if isinstance(event, GoalReceived):
        run = RunInput(
            run_id=env.run_id,
            tenant_id=env.tenant_id,
            goal=event.goal,
            goal_event_id=env.event_id,
            context=dict(event.context),
            policy=run_policy(event, policy, policies or TenantPolicies(), tier),
            requested_by=env.actor,
        )
        return StartRun(run)
    if isinstance(event, ApprovalGranted | ApprovalDenied):
        granted = isinstance(event, ApprovalGranted)
        timed_out = isinstance(event, ApprovalDenied) and event.timed_out
        decision = ApprovalDecision(
            approval_id=event.approval_id,
            step_id=event.step_id,
            granted=granted,
            approver=event.approver,
            reason=event.reason,
            timed_out=timed_out,
        )
        return DecideApproval(env.run_id, decision)
    if isinstance(event, RunCancelRequested):
        return CancelRun(env.run_id, CancelRequest(event.reason, event.requested_by))
    if isinstance(event, SubjectErased):
        return TerminateErased(env.run_id, event.erasure_id)
    return None


class TemporalRuns:
    """Applies commands to ``AgentWorkflow`` executions."""

    def __init__(self, client: Client, task_queue: str) -> None:
        self._client = client
        self._task_queue = task_queue

    async def apply(self, command: Command) -> str:
        """Apply ``command``; returns what happened (started, duplicate, signalled,
        terminated, gone)."""
        if isinstance(command, StartRun):
            try:
                await self._client.start_workflow(
                    AgentWorkflow.run,
                    command.run,
                    id=command.run.run_id,
                    task_queue=self._task_queue,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                )
            except WorkflowAlreadyStartedError:
                return "duplicate"
            return "started"
        handle: WorkflowHandle[AgentWorkflow, object] = self._client.get_workflow_handle(
            command.run_id
        )
        try:
            if isinstance(command, TerminateErased):
                await handle.terminate(reason=command.reason)
                return "terminated"
            if isinstance(command, DecideApproval):
                await handle.signal(AgentWorkflow.approval_decided, command.decision)
            else:
                await handle.signal(AgentWorkflow.cancel_requested, command.request)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return "gone"  # the run finished (or never started): nothing waits for it
            raise
        return "signalled"


class SagaBridge:
    """The bridge's :class:`~streams.consumer.Handler`: one command per event, in order."""

    name = "saga-bridge"
    # Temporal down or overloaded: wait, never skip.
    transient: tuple[type[BaseException], ...] = (RPCError, OSError, TimeoutError)

    def __init__(
        self,
        runs: TemporalRuns,
        policy: RunPolicy,
        policies: TenantPolicies | None = None,
        tiers: TierLookup | None = None,
    ) -> None:
        self._runs = runs
        self._policy = policy
        self._policies = policies or TenantPolicies()
        self._tiers = tiers
        if tiers is not None:
            self.transient = (*self.transient, *tiers.transient)
        self.applied: dict[str, int] = {}

    async def resume_at(self, partitions: Sequence[Partition]) -> Mapping[Partition, int] | None:
        return None  # at least once: the group's committed offsets

    async def apply(self, topic: str, partition: int, records: Sequence[Record]) -> None:
        for record in records:
            if record.event is None:
                continue
            event = record.event
            tier = None
            if self._tiers is not None and isinstance(event, GoalReceived):
                # At the goal's time, not now: a lagging bridge applies the tier the
                # goal was accepted under.
                tier = await self._tiers.at(event.envelope.tenant_id, event.envelope.occurred_at)
            command = command_for(event, self._policy, self._policies, tier)
            if command is not None:
                with bridging(record.trace, event, command):
                    outcome = await self._runs.apply(command)
                    log.info("%s: %s", type(command).__name__, outcome)  # with trace and run
                self.applied[outcome] = self.applied.get(outcome, 0) + 1
