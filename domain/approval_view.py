"""The approvals queue's read model: pure fold over approval events.

An approval that needs more than one grant (``required_approvals``, the tenant's
four-eyes rule) stays ``pending`` and collects distinct ``approvers`` until enough
have granted; one denial ends it. A grant by the run's requester never counts, as in
the workflow. A request the run withdrew (it failed or was cancelled first) is
``withdrawn``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from domain.events import ApprovalDenied, ApprovalGranted, ApprovalRequested, Event

WITHDRAWN_BY = "system:withdrawn"  # the approver of the denial that withdraws a request


@dataclass(frozen=True, slots=True)
class ApprovalView:
    """One row of ``approvals``."""

    approval_id: str
    run_id: str
    tenant_id: str
    step_id: str
    tool: str
    risk: float
    reasons: tuple[str, ...]
    requested_at: datetime
    expires_at: datetime
    status: str = "pending"
    decided_by: str | None = None
    decided_at: datetime | None = None
    reason: str | None = None
    goal: str = ""
    requested_by: str = ""
    arguments_json: str = "{}"
    inputs_json: str = "{}"
    compensation: str = ""
    required_approvals: int = 1
    approvers: tuple[str, ...] = ()


def approval_id_of(event: Event) -> str | None:
    """The approval an event is about, if it is an approval event."""
    if isinstance(event, ApprovalRequested | ApprovalGranted | ApprovalDenied):
        return event.approval_id
    return None


def evolve_approval(view: ApprovalView | None, event: Event) -> ApprovalView | None:
    """The approval after ``event``; the first decision wins, later ones change nothing."""
    env = event.envelope
    if isinstance(event, ApprovalRequested):
        if view is not None:
            return view
        return ApprovalView(
            approval_id=event.approval_id,
            run_id=env.run_id,
            tenant_id=env.tenant_id,
            step_id=event.step_id,
            tool=event.tool,
            risk=event.risk,
            reasons=tuple(event.reasons),
            requested_at=env.occurred_at,
            expires_at=event.expires_at,
            goal=event.goal,
            requested_by=event.requested_by,
            arguments_json=event.arguments_json,
            inputs_json=event.inputs_json,
            compensation=event.compensation,
            required_approvals=event.required_approvals,
        )
    if view is None or view.status != "pending":
        return view
    if isinstance(event, ApprovalGranted):
        if event.approver == view.requested_by or event.approver in view.approvers:
            return view
        approvers = (*view.approvers, event.approver)
        if len(approvers) < view.required_approvals:
            return replace(view, approvers=approvers)
        return _decided(replace(view, approvers=approvers), "granted", event)
    if isinstance(event, ApprovalDenied):
        if event.approver == WITHDRAWN_BY:
            return _decided(view, "withdrawn", event)
        return _decided(view, "expired" if event.timed_out else "denied", event)
    return view


def _decided(
    view: ApprovalView, status: str, event: ApprovalGranted | ApprovalDenied
) -> ApprovalView:
    return replace(
        view,
        status=status,
        decided_by=event.approver,
        decided_at=event.envelope.occurred_at,
        reason=event.reason,
    )
