"""Timeline and audit-log entries: how one event reads on a dashboard. Pure."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from domain.events import (
    ApprovalDenied,
    ApprovalGranted,
    ApprovalRequested,
    AuditRecorded,
    Event,
    GoalAssessed,
    GoalReceived,
    PlanGenerated,
    RunCancelled,
    RunCancelRequested,
    RunCompleted,
    RunFailed,
    StepCompensated,
    StepCompensationFailed,
    StepCompleted,
    StepFailed,
    StepStarted,
    SubjectErased,
)
from domain.fields import fields_of
from domain.privacy import ERASED


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One row of ``run_events``: the ``seq``-th event of its run."""

    event_id: str
    run_id: str
    tenant_id: str
    seq: int
    event_type: str
    occurred_at: datetime
    actor: str
    summary: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One row of ``audit_log``."""

    event_id: str
    tenant_id: str
    occurred_at: datetime
    actor: str
    category: str
    action: str
    outcome: str
    subject: str
    resource: str
    details: dict[str, str]
    sequence: int
    prev_hash: str
    hash: str
    run_id: str = ""
    causation_id: str | None = None
    correlation_id: str = ""


def timeline_entry(event: Event, seq: int) -> TimelineEntry:
    """``event`` as the ``seq``-th entry of its run's timeline."""
    env = event.envelope
    return TimelineEntry(
        env.event_id,
        env.run_id,
        env.tenant_id,
        seq,
        env.event_type,
        env.occurred_at,
        env.actor,
        summarize(event),
        payload(event),
    )


def audit_entry(event: AuditRecorded) -> AuditEntry:
    env = event.envelope
    return AuditEntry(
        env.event_id,
        env.tenant_id,
        env.occurred_at,
        env.actor,
        event.category,
        event.action,
        event.outcome,
        event.subject,
        event.resource,
        dict(event.details),
        event.sequence,
        event.prev_hash,
        event.hash,
        env.run_id,
        env.causation_id,
        env.correlation_id,
    )


def payload(event: Event) -> dict[str, Any]:
    """The event's own fields (not its envelope) as JSON-ready values."""
    names, values = fields_of(type(event), skip="envelope")
    return {name: _jsonable(value) for name, value in zip(names, values(event), strict=True)}


_PLAIN = frozenset({str, int, float, bool, type(None)})


def _jsonable(value: Any) -> Any:
    kind = type(value)
    if kind in _PLAIN:  # most values: checked by exact type first
        return value
    if kind is tuple or kind is list:
        return [_jsonable(v) for v in value]
    if kind is dict:
        return {str(k): _jsonable(v) for k, v in value.items()}
    if kind is datetime:
        return value.isoformat()
    names, values = fields_of(kind)
    if names or dataclasses.is_dataclass(kind):  # a plan's steps
        return {name: _jsonable(v) for name, v in zip(names, values(value), strict=True)}
    return _jsonable_subclass(value)


def _jsonable_subclass(value: Any) -> Any:
    """Values of a subclass of the types above (an enum of str, a named tuple)."""
    if isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def summarize(e: Event) -> str:  # one arm per event type
    """A one-line human summary of ``e``."""
    match e:
        case GoalReceived():
            return f"goal received: {e.goal[:120]}"
        case GoalAssessed():
            verdict = "allowed" if e.allowed else "rejected"
            return f"goal {verdict} (risk {e.risk_score:.2f})"
        case PlanGenerated():
            source = "from cache" if e.from_cache else f"by {e.planner}"
            return f"plan {e.plan_id} with {len(e.steps)} steps {source}"
        case StepStarted():
            return f"step {e.step_id} ({e.tool}) started, attempt {e.attempt}"
        case StepCompleted():
            return f"step {e.step_id} ({e.tool}) completed in {e.duration_ms} ms"
        case StepFailed():
            final = "finally " if e.final else ""
            return f"step {e.step_id} ({e.tool}) {final}failed: {e.error_type}"
        case StepCompensated():
            return f"step {e.step_id} compensated by {e.compensation_tool}"
        case StepCompensationFailed():
            return f"compensation of step {e.step_id} failed: {e.error_message[:120]}"
        case ApprovalRequested():
            return f"approval {e.approval_id} requested for {e.tool} (risk {e.risk:.2f})"
        case ApprovalGranted():
            return f"approval {e.approval_id} granted by {e.approver}"
        case ApprovalDenied():
            how = "timed out" if e.timed_out else f"denied by {e.approver}"
            return f"approval {e.approval_id} {how}"
        case RunCancelRequested():
            return f"cancel requested by {e.requested_by}: {e.reason[:120]}"
        case RunCompleted():
            return f"run completed: {e.step_count} steps in {e.duration_ms} ms"
        case RunFailed():
            return f"run failed: {e.reason[:120]}"
        case RunCancelled():
            return f"run cancelled by {e.cancelled_by}: {e.reason[:120]}"
        case SubjectErased():
            return f"personal data erased ({e.scope} key {e.key_id[:8]}, by {e.requested_by})"
    return e.envelope.event_type


# Summaries that end with personal text after the first ": " (see summarize).
_PERSONAL_TAIL = frozenset(
    {"goal_received", "step_compensation_failed", "run_cancel_requested", "run_failed"}
    | {"run_cancelled"}
)


def erased_summary(event_type: str, summary: str) -> str:
    """A stored summary as a replay would write it once its personal fields are erased."""
    if event_type not in _PERSONAL_TAIL or ": " not in summary:
        return summary
    return f"{summary.split(': ', 1)[0]}: {ERASED}"
