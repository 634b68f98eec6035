"""The read model of one run, folded from its events: pure, no I/O.

``evolve_run`` is applied to a run's events in log order (one run lives in one
partition, so that order is total). The dashboard's ``runs`` table, the Redis live
status and audits all use this one fold.
"""

from __future__ import annotations

import dataclasses
import json
import operator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from domain.events import (
    ApprovalDenied,
    ApprovalGranted,
    ApprovalRequested,
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
from domain.privacy import ERASED

TERMINAL = frozenset({"completed", "failed", "cancelled"})
# Terminal, or refused by the guardian and about to fail: nothing more can be asked of it.
ENDING = TERMINAL | {"rejected"}

RUN_EVENTS: tuple[type[Event], ...] = (
    GoalReceived,
    GoalAssessed,
    PlanGenerated,
    StepStarted,
    StepCompleted,
    StepFailed,
    StepCompensated,
    StepCompensationFailed,
    ApprovalRequested,
    ApprovalGranted,
    ApprovalDenied,
    RunCancelRequested,
    RunCompleted,
    RunFailed,
    RunCancelled,
    SubjectErased,
)
"""The events of a run's lifecycle: the ones that make up ``runs`` and timelines."""


@dataclass(frozen=True, slots=True)
class RunView:
    """One row of ``runs``; every field is derived from events only."""

    run_id: str
    tenant_id: str
    status: str
    created_at: datetime
    updated_at: datetime
    last_event_type: str
    goal: str | None = None
    risk_score: float | None = None
    plan_id: str | None = None
    planner: str | None = None
    cache_hit: bool = False
    cache_similarity: float | None = None
    steps_planned: int = 0
    steps_started: int = 0
    steps_completed: int = 0
    steps_failed: int = 0
    steps_compensated: int = 0
    approval_state: str | None = None
    pending_approvals: int = 0
    outcome_reason: str | None = None
    ended_at: datetime | None = None
    duration_ms: int | None = None
    event_count: int = 0

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def to_json(self) -> str:
        """A compact JSON form (for Redis), read back by :meth:`from_json`."""
        data = dict(zip(_NAMES, _VALUES(self), strict=True))  # flat: no asdict deep copy
        for key in ("created_at", "updated_at", "ended_at"):
            data[key] = data[key].isoformat() if data[key] else None
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> RunView:
        data: dict[str, Any] = json.loads(text)
        for key in ("created_at", "updated_at", "ended_at"):
            data[key] = datetime.fromisoformat(data[key]) if data[key] else None
        return cls(**data)


_NAMES = tuple(f.name for f in dataclasses.fields(RunView))
_INDEX = {name: i for i, name in enumerate(_NAMES)}
_VALUES = operator.attrgetter(*_NAMES)


def evolve_run(run: RunView | None, event: Event) -> RunView:
    """The run after ``event``; ``None`` is a run not seen yet."""
    env = event.envelope
    if run is None:
        run = RunView(env.run_id, env.tenant_id, "received", env.occurred_at, env.occurred_at, "")
    # One new view per event: the projector folds every event through here, and building
    # the frozen view is most of the cost, so the arms below return only what they change.
    values = list(_VALUES(run))
    values[_UPDATED_AT] = env.occurred_at
    values[_LAST_EVENT_TYPE] = env.event_type
    values[_EVENT_COUNT] = run.event_count + 1
    for name, value in _changes(run, event).items():
        values[_INDEX[name]] = value
    return RunView(*values)


_UPDATED_AT, _LAST_EVENT_TYPE, _EVENT_COUNT = (
    _INDEX[n] for n in ("updated_at", "last_event_type", "event_count")
)
_Changes = dict[str, Any]


def _status(run: RunView, status: str, **changes: Any) -> _Changes:
    # A finished run stays finished: late or redundant facts do not reopen it.
    if not run.terminal:
        changes["status"] = status
    return changes


def _changes(run: RunView, e: Event) -> _Changes:  # one arm per event type
    match e:
        case GoalReceived():
            return {"goal": e.goal}
        case SubjectErased():  # the goal and the reason held personal text
            return {
                "goal": None if run.goal is None else ERASED,
                "outcome_reason": None if run.outcome_reason is None else ERASED,
            }
        case GoalAssessed(allowed=False):
            return _status(
                run,
                "rejected",
                risk_score=e.risk_score,
                outcome_reason="; ".join(e.reasons) or "goal not allowed",
            )
        case GoalAssessed():
            return _status(run, "assessed", risk_score=e.risk_score)
        case PlanGenerated():
            return _status(
                run,
                "planned",
                plan_id=e.plan_id,
                planner=e.planner,
                cache_hit=e.from_cache,
                cache_similarity=e.cache_similarity,
                steps_planned=len(e.steps),
            )
        case StepStarted():
            started = {"steps_started": run.steps_started + (e.attempt == 1)}
            return _status(run, "running", **started) if run.pending_approvals == 0 else started
        case StepCompleted():
            return {"steps_completed": run.steps_completed + 1}
        case StepFailed():
            return {"steps_failed": run.steps_failed + e.final}
        case StepCompensated():
            return _status(run, "compensating", steps_compensated=run.steps_compensated + 1)
        case ApprovalRequested():
            return _status(
                run,
                "awaiting_approval",
                pending_approvals=run.pending_approvals + 1,
                approval_state="pending",
            )
        case ApprovalGranted() | ApprovalDenied():
            return _decided(run, e)
        case RunCancelRequested():
            return _status(run, "cancelling")
        case RunCompleted():
            return _ended(run, "completed", e.envelope.occurred_at, e.duration_ms, None)
        case RunFailed():
            return _ended(run, "failed", e.envelope.occurred_at, e.duration_ms, e.reason)
        case RunCancelled():
            took = int((e.envelope.occurred_at - run.created_at).total_seconds() * 1000)
            return _ended(run, "cancelled", e.envelope.occurred_at, max(took, 0), e.reason)
    return {}


def _decided(run: RunView, e: ApprovalGranted | ApprovalDenied) -> _Changes:
    pending = max(run.pending_approvals - 1, 0)
    if isinstance(e, ApprovalGranted):
        state = "pending" if pending else "granted"
    else:
        state = "expired" if e.timed_out else "denied"
    changes: _Changes = {"pending_approvals": pending, "approval_state": state}
    if run.status == "awaiting_approval" and not pending:
        return _status(run, "running", **changes)
    return changes


def _ended(
    run: RunView, status: str, at: datetime, duration_ms: int, reason: str | None
) -> _Changes:
    if run.terminal:
        return {}
    return {"status": status, "ended_at": at, "duration_ms": duration_ms, "outcome_reason": reason}
