"""The approvals queue's read model: pure fold over approval events."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from domain.events import ApprovalDenied, ApprovalGranted, ApprovalRequested, Event


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
        )
    if view is None or view.status != "pending":
        return view
    if isinstance(event, ApprovalGranted):
        status = "granted"
    elif isinstance(event, ApprovalDenied):
        status = "expired" if event.timed_out else "denied"
    else:
        return view
    return replace(
        view,
        status=status,
        decided_by=event.approver,
        decided_at=env.occurred_at,
        reason=event.reason,
    )
