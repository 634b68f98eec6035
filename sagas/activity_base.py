"""What every saga activity shares: its clients, envelopes, appends and heartbeats.

Event ids are derived from the run, the fact and a discriminator (step id, attempt,
approval id), never from time, so a retried activity appends records that downstream
consumers recognise as the same facts. Tool effects carry the idempotency key
``<run_id>:<step_id>``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from temporalio import activity

from domain import ids
from domain.events import Envelope, Event, PlanStep
from domain.risk_policy import TenantPolicies
from domain.storable import utf8_safe
from sagas import messages as m
from sagas.guardian import GuardianPolicy
from sagas.killswitch import KillSwitches
from sagas.plan_source import PlanSource
from sagas.tools import ToolCall, ToolRegistry
from streams.producer import EventAppender

ACTOR = "saga"
HEARTBEAT_EVERY_S = 2.0


def idempotency_key(run_id: str, step_id: str) -> str:
    """The key every effect of one step carries, across attempts and workers."""
    return f"{run_id}:{step_id}"


class ActivityBase:
    """Holds the clients the activities are handed by the worker's composition root."""

    def __init__(
        self,
        appender: EventAppender,
        tools: ToolRegistry,
        plans: PlanSource,
        kill_switches: KillSwitches,
        guardian: GuardianPolicy | None = None,
        policies: TenantPolicies | None = None,
    ) -> None:
        self._appender = appender
        self._tools = tools
        self._plans = plans
        self._switches = kill_switches
        self._guardian = guardian or GuardianPolicy()
        self._policies = policies or TenantPolicies()

    def _call(
        self,
        run: m.RunRef,
        step_id: str,
        attempt: int,
        arguments: dict[str, object],
        inputs: dict[str, object],
        mark: tuple[object, ...] = (),
    ) -> ToolCall:
        return ToolCall(
            run_id=run.run_id,
            tenant_id=run.tenant_id,
            step_id=step_id,
            attempt=attempt,
            idempotency_key=idempotency_key(run.run_id, step_id),
            arguments=arguments,
            inputs=inputs,
            # A tool's own heartbeats carry the attempt's mark (see heartbeating).
            heartbeat=lambda *_: activity.heartbeat(*mark),
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
        # A tool's message may hold an unpaired surrogate, which no log record can carry.
        await self._appender.append(utf8_safe(event))


def to_wire(step: PlanStep) -> m.WireStep:
    """A plan step as the workflow carries it."""
    return m.WireStep(
        step_id=step.step_id,
        tool=step.tool,
        arguments_json=step.arguments_json,
        depends_on=list(step.depends_on),
        risk=step.risk,
        compensation=step.compensation,
        timeout_s=step.timeout_s,
        max_attempts=step.max_attempts,
    )


@asynccontextmanager
async def heartbeating(*mark: object) -> AsyncIterator[None]:
    """Heartbeat while the body runs, so a lost worker is noticed within the timeout.

    ``mark`` travels as the heartbeat's details: the next attempt of the same activity
    reads the last one (``activity.info().heartbeat_details``) and so learns whether
    this attempt was lost in flight (see :func:`sagas.compensation.unknown_before`).
    """

    async def pump() -> None:
        while True:
            activity.heartbeat(*mark)
            await asyncio.sleep(HEARTBEAT_EVERY_S)

    task = asyncio.create_task(pump())
    try:
        yield
    finally:
        task.cancel()
