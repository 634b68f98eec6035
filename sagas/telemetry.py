"""Tracing and metrics for the Temporal side.

- :func:`client_interceptors`: temporalio's OpenTelemetry ``TracingInterceptor``, given
  to every ``Client.connect`` (API, saga bridge, worker). On a client it puts the
  caller's span context into the workflow's headers; a worker built from that client
  uses it too, so the workflow's and each activity's spans join the goal's trace and an
  activity's appends carry it on into Kafka.
- :class:`MetricsInterceptor`: the worker's workflow and activity latencies and its
  compensations (``omnihub_workflow_duration_seconds``,
  ``omnihub_activity_duration_seconds``, ``omnihub_compensations_total``).

A workflow runs in the sandbox and is replayed, so it cannot time itself with a clock
or touch the registry: at its end, when not replaying, it hands start and end times
(workflow time) to an extern function that observes the histogram outside.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from opentelemetry.trace import SpanKind
from temporalio import activity, workflow
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    ExecuteWorkflowInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from domain.events import Event
from domain.plan_cache import DisabledPlanCache
from omnihub import metrics, tracing
from omnihub.logs import log_context

COMPENSATING_ACTIVITIES = frozenset({"compensate_step"})
_OBSERVE = "__omnihub_workflow_finished"


def client_interceptors() -> list[Any]:
    """The interceptors every OmniHub Temporal client is connected with."""
    return [TracingInterceptor()]


def observe_workflow(workflow_type: str, outcome: str, started: datetime, ended: datetime) -> None:
    """Record one workflow's run time (outside the sandbox)."""
    seconds = max((ended - started).total_seconds(), 0.0)
    metrics.WORKFLOW_DURATION.labels(workflow_type, outcome).observe(seconds)


class MetricsInterceptor(Interceptor):
    """The worker interceptor that times workflows and activities."""

    def __init__(self, observe: Callable[[str, str, datetime, datetime], None] = observe_workflow):
        self._observe = observe

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ActivityMetrics(next)

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        input.unsafe_extern_functions[_OBSERVE] = self._observe
        return _WorkflowMetrics


class _ActivityMetrics(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        name, outcome = info.activity_type, "failed"
        started = time.perf_counter()
        try:
            with log_context(tenant_id=_tenant_of(input.args), run_id=info.workflow_id):
                result = await super().execute_activity(input)
            outcome = "completed"
            if name in COMPENSATING_ACTIVITIES:
                metrics.COMPENSATIONS.labels(name).inc()
            return result
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            elapsed = time.perf_counter() - started
            metrics.ACTIVITY_DURATION.labels(name, outcome).observe(elapsed)


def _tenant_of(args: Sequence[Any]) -> str | None:
    """The tenant of an activity's input (``inp.run.tenant_id`` or ``inp.tenant_id``)."""
    first = args[0] if args else None
    tenant = getattr(getattr(first, "run", first), "tenant_id", None)
    return tenant if isinstance(tenant, str) else None


class _WorkflowMetrics(WorkflowInboundInterceptor):
    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        outcome = "failed"
        try:
            result = await super().execute_workflow(input)
            outcome = str(getattr(result, "status", "completed") or "completed")
            return result
        except workflow.ContinueAsNewError:
            outcome = ""  # the run goes on in a new execution; it is timed when it ends
            raise
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            if outcome and not workflow.unsafe.is_replaying():
                info = workflow.info()
                observe = workflow.extern_functions()[_OBSERVE]
                observe(info.workflow_type, outcome, info.start_time, workflow.now())


@contextmanager
def bridging(trace: bytes | None, event: Event, command: object) -> Iterator[None]:
    """The bridge's span for one command, in the trace of the record that asked for it
    (so the workflow it starts or signals joins the goal's trace)."""
    env = event.envelope
    with log_context(tenant_id=env.tenant_id, run_id=env.run_id):
        if not tracing.enabled():
            yield
            return
        remote = tracing.parse_traceparent(trace)
        with tracing.tracer().start_as_current_span(
            f"saga-bridge {type(command).__name__}",
            context=tracing.context_of(remote) if remote else None,
            kind=SpanKind.CONSUMER,
            attributes={
                tracing.RUN_ID: env.run_id,
                tracing.TENANT_ID: env.tenant_id,
                "omnihub.event_type": env.event_type,
            },
        ):
            yield


def plan_looked_up(cache: object, hit: bool, planner_uses_model: bool) -> None:
    """Count a plan-cache lookup: a hit, and the model call it saved when the planner
    that would have run calls a model; a miss. A disabled cache counts nothing."""
    if isinstance(cache, DisabledPlanCache):
        return
    if not hit:
        metrics.PLAN_CACHE_MISSES.inc()
        return
    metrics.PLAN_CACHE_HITS.inc()
    if planner_uses_model:
        metrics.PLAN_CACHE_SAVED_MODEL_CALLS.inc()
