"""The pure fold of a batch of events into row changes for every read model.

Adapters load what the batch touches (runs, approvals, which event ids were already
applied), call :func:`fold_batch`, and write the returned changes with their position
in one transaction. No I/O here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from domain.approval_view import ApprovalView, approval_id_of, evolve_approval
from domain.events import ApprovalGranted, AuditRecorded, Event, SubjectErased
from domain.kpis import KpiDelta, RunDuration, kpi_delta, run_duration
from domain.run_view import RUN_EVENTS, RunView, evolve_run
from domain.storable import storable
from domain.timeline import AuditEntry, TimelineEntry, audit_entry, timeline_entry


@dataclass(frozen=True)
class ApplyResult:
    """What applying a partition's batch to a read model did."""

    applied: int  # records past the stored position
    skipped: int  # records at or below it: applied before
    duplicates: int  # applied records whose event_id was already folded


@dataclass
class Loaded:
    """The current state of what a batch touches."""

    runs: dict[str, RunView] = field(default_factory=dict)
    approvals: dict[str, ApprovalView] = field(default_factory=dict)
    applied_ids: set[str] = field(default_factory=set)


@dataclass
class Changes:
    """What a batch changes: final rows of touched runs and approvals, new rows, deltas."""

    runs: dict[str, RunView] = field(default_factory=dict)
    runs_before: dict[str, RunView | None] = field(default_factory=dict)
    approvals: dict[str, ApprovalView] = field(default_factory=dict)
    timeline: list[TimelineEntry] = field(default_factory=list)
    audit: list[AuditEntry] = field(default_factory=list)
    kpis: dict[tuple[str, datetime], KpiDelta] = field(default_factory=dict)
    durations: list[RunDuration] = field(default_factory=list)
    applied_ids: list[str] = field(default_factory=list)
    erased_runs: list[str] = field(default_factory=list)  # stored rows to overwrite
    duplicates: int = 0
    ignored: int = 0


@dataclass(frozen=True)
class Folded:
    """One sink's fold of a partition's batch, from ``start`` (its stored position)."""

    records: Sequence[object]  # the batch as the pipeline handed it (compared by identity)
    start: int
    changes: Changes


class FoldShare:
    """Hands the first sink's fold of a batch to the next sink that stands at the same
    position, so a batch is folded once for every read model.

    Sinks at the same position hold the same fold of the same log prefix, so the fold
    is the same against either's state. A sink at another position (it crashed between
    the two writes, a rebuild swapped it) finds nothing here and folds on its own.
    """

    def __init__(self) -> None:
        self._last: dict[tuple[str, int], Folded] = {}

    def offer(self, topic: str, partition: int, folded: Folded) -> None:
        """Keep ``folded`` (written and committed) for the partition's next sink."""
        self._last[(topic, partition)] = folded

    def take(
        self, topic: str, partition: int, records: Sequence[object], start: int
    ) -> Changes | None:
        """The fold of this very batch from ``start``, if the first sink made it."""
        folded = self._last.pop((topic, partition), None)
        if folded is None or folded.records is not records or folded.start != start:
            return None
        return folded.changes


def fold_batch(loaded: Loaded, events: Iterable[Event]) -> Changes:
    """Fold ``events`` (in log order) over ``loaded``; duplicates change nothing."""
    out = Changes()
    seen = set(loaded.applied_ids)
    for event in events:
        event_id = event.envelope.event_id
        if not isinstance(event, (AuditRecorded, *RUN_EVENTS)):
            out.ignored += 1  # not a read-model fact (control plane): nothing to fold
            continue
        if event_id in seen:
            out.duplicates += 1
            continue
        seen.add(event_id)
        out.applied_ids.append(event_id)
        # Text from tools, models or request paths may hold what Postgres cannot store.
        event = storable(event)
        if isinstance(event, AuditRecorded):
            out.audit.append(audit_entry(event))
        else:
            _fold_run_event(loaded, out, event)
    return out


def _still_waiting(
    before: RunView | None, after: RunView, loaded: Loaded, out: Changes, event: Event
) -> RunView:
    """``after``, unless ``event`` is a grant that leaves its approval pending (one of a
    quorum, or the requester's): then the run still waits as it did before."""
    if before is None or not isinstance(event, ApprovalGranted):
        return after
    current = out.approvals.get(event.approval_id) or loaded.approvals.get(event.approval_id)
    settled = evolve_approval(current, event)
    if settled is None or settled.status != "pending":
        return after
    return replace(
        after,
        pending_approvals=before.pending_approvals,
        approval_state=before.approval_state,
        status=before.status,
    )


def _fold_run_event(loaded: Loaded, out: Changes, event: Event) -> None:
    run_id = event.envelope.run_id
    before = out.runs.get(run_id) or loaded.runs.get(run_id)
    if isinstance(event, SubjectErased):
        out.erased_runs.append(run_id)
        if before is None:  # nothing of the run is held here (or it expired): no view
            return
    out.runs_before.setdefault(run_id, loaded.runs.get(run_id))
    after = _still_waiting(before, evolve_run(before, event), loaded, out, event)
    out.runs[run_id] = after
    out.timeline.append(timeline_entry(event, after.event_count))
    delta = kpi_delta(before, after, event)
    if delta is not None:
        key = (delta.tenant_id, delta.minute)
        out.kpis[key] = out.kpis[key] + delta if key in out.kpis else delta
    duration = run_duration(before, after)
    if duration is not None:
        out.durations.append(duration)
    approval_id = approval_id_of(event)
    if approval_id is not None:
        current = out.approvals.get(approval_id) or loaded.approvals.get(approval_id)
        updated = evolve_approval(current, event)
        if updated is not None and updated != current:
            out.approvals[approval_id] = updated
