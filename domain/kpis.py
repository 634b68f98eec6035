"""KPI roll-ups per tenant per minute of event time: pure functions of run transitions."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime

from domain.events import Event, GoalReceived, PlanGenerated, StepCompensated
from domain.run_view import RunView

COUNTERS = (
    "goals",
    "completions",
    "failures",
    "cancellations",
    "compensations",
    "cache_hits",
    "plans",
    "model_calls",
)
# Planners that call no model: their plans neither cost nor save a model call.
MODEL_FREE_PLANNERS = frozenset({"rules", "rule-based"})


@dataclass(frozen=True, slots=True)
class KpiDelta:
    """What one event adds to its tenant's minute bucket."""

    tenant_id: str
    minute: datetime
    goals: int = 0
    completions: int = 0
    failures: int = 0
    cancellations: int = 0
    compensations: int = 0
    cache_hits: int = 0
    plans: int = 0  # plans made, however (hit rate = cache_hits / plans)
    model_calls: int = 0  # plans a model had to make (each cache hit saved one)

    def __add__(self, other: KpiDelta) -> KpiDelta:
        counts = {c: getattr(self, c) + getattr(other, c) for c in COUNTERS}
        return KpiDelta(self.tenant_id, self.minute, **counts)

    @property
    def empty(self) -> bool:
        return not any(getattr(self, f.name) for f in fields(self) if f.name in COUNTERS)


@dataclass(frozen=True, slots=True)
class RunDuration:
    """A finished run's duration, bucketed in the minute it ended."""

    run_id: str
    tenant_id: str
    minute: datetime
    duration_ms: int


_ENDINGS = {"completed": "completions", "failed": "failures", "cancelled": "cancellations"}


def minute_of(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


def kpi_delta(before: RunView | None, after: RunView, event: Event) -> KpiDelta | None:
    """The counters ``event`` moves, given the run before and after it."""
    counts: dict[str, int] = {}
    if isinstance(event, GoalReceived):
        counts["goals"] = 1
    elif isinstance(event, PlanGenerated):
        counts.update(_plan_counts(event))
    elif isinstance(event, StepCompensated):
        counts["compensations"] = 1
    if _just_ended(before, after):
        counts[_ENDINGS[after.status]] = 1
    if not counts:
        return None
    env = event.envelope
    return KpiDelta(env.tenant_id, minute_of(env.occurred_at), **counts)


def _plan_counts(event: PlanGenerated) -> dict[str, int]:
    if event.from_cache:
        return {"plans": 1, "cache_hits": 1}
    if event.planner in MODEL_FREE_PLANNERS:
        return {"plans": 1}
    return {"plans": 1, "model_calls": 1}


def run_duration(before: RunView | None, after: RunView) -> RunDuration | None:
    """The duration sample a run contributes when (and only when) it ends."""
    if not _just_ended(before, after) or after.ended_at is None or after.duration_ms is None:
        return None
    return RunDuration(after.run_id, after.tenant_id, minute_of(after.ended_at), after.duration_ms)


def _just_ended(before: RunView | None, after: RunView) -> bool:
    return after.terminal and (before is None or not before.terminal)


def percentile(sorted_values: list[int], q: float) -> float | None:
    """Linear-interpolated percentile (as Postgres ``percentile_cont``); None if empty."""
    if not sorted_values:
        return None
    pos = (len(sorted_values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)
