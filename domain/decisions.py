"""Write-side rules for humans' decisions on runs: may this approval be decided, may this
run be cancelled (pure; the routes in ``api/routes/decisions.py`` ask, then append).

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


def approval_refusal(approval_id: str, status: str, decided_by: str | None) -> Refused | None:
    """None if the approval may be decided now (it is still pending)."""
    if status == "pending":
        return None
    return Refused(
        "approval-already-decided",
        f"approval {approval_id!r} is {status}",
        {"approval_status": status, "decided_by": decided_by},
    )


def cancel_refusal(run_id: str, status: str) -> Refused | None:
    """None if the run may be cancelled (it has not ended and is not about to)."""
    if status not in ENDING:
        return None
    return Refused("run-already-finished", f"run {run_id!r} is {status}", {"run_status": status})
