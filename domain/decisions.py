"""Write-side rules for humans' decisions on runs: may this approval be decided, by
whom, may this run be cancelled (pure; the routes in ``api/routes/decisions.py`` ask,
then append).

Separation of duties: the principal that requested a run (the ``goal_received``
envelope's actor, recorded on the approval) never decides its approvals; an approval
that needs several grants takes each principal once; and an approval whose requester is
not known is refused rather than decided blind.

The states come from the projections' own folds (:mod:`domain.run_view`,
:mod:`domain.approval_view`), so a rule and the read model can never disagree about
what "finished" means.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from domain.run_view import ENDING


@dataclass(frozen=True)
class Refused:
    """Why a decision is not taken: a problem type slug, a sentence and the facts."""

    code: str
    detail: str
    facts: Mapping[str, str | None] = field(default_factory=dict)
    status: int = 409  # the HTTP status the route answers with


@dataclass(frozen=True)
class PendingApproval:
    """What the rules need to know about an approval (from its projection)."""

    approval_id: str
    status: str
    decided_by: str | None
    requested_by: str | None
    approvers: tuple[str, ...] = ()
    required_approvals: int = 1


def approval_refusal(approval_id: str, status: str, decided_by: str | None) -> Refused | None:
    """None if the approval may be decided now (it is still pending)."""
    if status == "pending":
        return None
    return Refused(
        "approval-already-decided",
        f"approval {approval_id!r} is {status}",
        {"approval_status": status, "decided_by": decided_by},
    )


def decider_refusal(approval: PendingApproval, decider: str) -> Refused | None:
    """None if ``decider`` (the authenticated principal's actor) may decide ``approval``."""
    already = approval_refusal(approval.approval_id, approval.status, approval.decided_by)
    if already is not None:
        return already
    if not approval.requested_by:
        return Refused(
            "requester-unknown",
            f"approval {approval.approval_id!r} does not say who requested its run, so "
            "separation of duties cannot be checked; it cannot be decided here",
            {"approval_status": approval.status},
        )
    if decider == approval.requested_by:
        return Refused(
            "self-approval",
            "the principal that requested a run cannot decide its approvals",
            {"requested_by": approval.requested_by, "decider": decider},
            status=403,
        )
    if decider in approval.approvers:
        return Refused(
            "already-approved-by-you",
            f"{decider} already granted approval {approval.approval_id!r}; it needs "
            f"{approval.required_approvals} distinct approvers",
            {
                "approvers": ", ".join(approval.approvers),
                "required_approvals": str(approval.required_approvals),
            },
        )
    return None


def is_final_grant(approval: PendingApproval, decider: str) -> bool:
    """Whether ``decider``'s grant completes the quorum (a denial is always final)."""
    distinct = set(approval.approvers) | {decider}
    return len(distinct) >= approval.required_approvals


def cancel_refusal(run_id: str, status: str) -> Refused | None:
    """None if the run may be cancelled (it has not ended and is not about to)."""
    if status not in ENDING:
        return None
    return Refused("run-already-finished", f"run {run_id!r} is {status}", {"run_status": status})
