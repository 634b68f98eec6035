"""Approvals you can trust (issue 17): four eyes, real identities, full context.

Pure rules (:mod:`domain.decisions`), the approvals fold (:mod:`domain.approval_view`),
the redaction rule (:mod:`domain.approval_context`) and the v2 schema reading v1 bytes.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from domain.approval_context import REDACTED, compensation_effect, redact, redacted_json
from domain.approval_view import WITHDRAWN_BY, ApprovalView, evolve_approval
from domain.decisions import PendingApproval, decider_refusal, is_final_grant
from domain.events import ApprovalDenied, ApprovalGranted, ApprovalRequested, GoalReceived
from omnihub import REPO_ROOT
from projections.fold import Loaded, fold_batch
from streams.codec import EventCodec
from streams.schema_registry import SchemaRegistry
from tests.factories import AT, env

ALICE, BOB, CAROL = "api-key:alice", "api-key:bob", "api-key:carol"


@pytest.fixture(scope="module")
def codec() -> EventCodec:
    return EventCodec(SchemaRegistry.from_dir(REPO_ROOT / "schemas"))


def pending(**kw: object) -> PendingApproval:
    base = PendingApproval("a1", "pending", None, ALICE)
    return replace(base, **kw)  # type: ignore[arg-type]


def test_the_requester_can_never_decide_its_own_approval() -> None:
    refused = decider_refusal(pending(), ALICE)
    assert refused is not None and (refused.code, refused.status) == ("self-approval", 403)
    assert decider_refusal(pending(), BOB) is None


def test_an_approval_whose_requester_is_unknown_is_not_decided_blind() -> None:
    refused = decider_refusal(pending(requested_by=None), BOB)
    assert refused is not None and refused.code == "requester-unknown"


def test_a_decided_approval_is_refused_first() -> None:
    refused = decider_refusal(pending(status="granted", decided_by=BOB), CAROL)
    assert refused is not None and refused.code == "approval-already-decided"


def test_a_quorum_needs_distinct_principals() -> None:
    two = pending(required_approvals=2)
    assert not is_final_grant(two, BOB)
    after_bob = replace(two, approvers=(BOB,))
    refused = decider_refusal(after_bob, BOB)
    assert refused is not None and refused.code == "already-approved-by-you"
    assert decider_refusal(after_bob, CAROL) is None and is_final_grant(after_bob, CAROL)


def requested(required: int = 1, requester: str = ALICE) -> ApprovalRequested:
    return ApprovalRequested(
        env(ApprovalRequested, "run-1", "a1"),  # type: ignore[arg-type]
        "a1",
        "s2",
        "pg_record",
        0.95,
        ("moves money",),
        AT + timedelta(hours=1),
        goal="wire 1000000 USD to account 42",
        requested_by=requester,
        arguments_json='{"record": {"email": "[redacted]"}}',
        inputs_json='{"s1": "hi"}',
        compensation="marks the record as compensated",
        required_approvals=required,
    )


def granted(by: str) -> ApprovalGranted:
    return ApprovalGranted(env(ApprovalGranted, "run-1", "a1", by), "a1", "s2", by, None)  # type: ignore[arg-type]


def fold(*events: object) -> ApprovalView | None:
    view = None
    for e in events:
        view = evolve_approval(view, e)  # type: ignore[arg-type]
    return view


def test_the_view_carries_what_is_approved() -> None:
    view = fold(requested())
    assert view is not None
    assert (view.goal, view.requested_by, view.required_approvals) == (
        "wire 1000000 USD to account 42",
        ALICE,
        1,
    )
    assert view.compensation and json.loads(view.inputs_json) == {"s1": "hi"}


def test_the_view_stays_pending_until_the_quorum_and_ignores_the_requester() -> None:
    view = fold(requested(2), granted(ALICE), granted(BOB), granted(BOB))
    assert view is not None and (view.status, view.approvers) == ("pending", (BOB,))
    view = fold(requested(2), granted(BOB), granted(CAROL))
    assert view is not None and (view.status, view.approvers) == ("granted", (BOB, CAROL))


def test_a_withdrawn_request_is_withdrawn() -> None:
    withdraw = ApprovalDenied(
        env(ApprovalDenied, "run-1", "a1", "withdrawn"),  # type: ignore[arg-type]
        "a1",
        "s2",
        WITHDRAWN_BY,
        "withdrawn: step s1 failed",
        False,
    )
    view = fold(requested(), withdraw)
    assert view is not None and view.status == "withdrawn"


def test_personal_values_are_redacted_at_any_depth() -> None:
    args = {
        "collection": "notes",
        "record": {"email": "a@b.example", "Full-Name": "Ann", "text": "mail bob@x.example"},
        "people": [{"phone": "+1 555", "role": "ops"}],
        "customer_pii": {"anything": 1},
    }
    assert redact(args) == {
        "collection": "notes",
        "record": {"email": REDACTED, "Full-Name": REDACTED, "text": f"mail {REDACTED}"},
        "people": [{"phone": REDACTED, "role": "ops"}],
        "customer_pii": REDACTED,
    }
    assert redacted_json("not json") == json.dumps(REDACTED)


def test_the_compensation_is_said_in_words() -> None:
    assert "nothing to undo" in compensation_effect("transform", "noop", {})
    assert "'payment_instructions'" in compensation_effect(
        "pg_record", "pg_record_compensate", {"collection": "payment_instructions"}
    )
    assert "DELETE http://h/x" in compensation_effect(
        "http_call", "http_compensate", {"compensate_url": "http://h/x"}
    )
    assert "cannot be undone" in compensation_effect("http_call", "http_compensate", {})


def test_v1_approval_requested_bytes_read_as_v2_with_defaults(codec: EventCodec) -> None:
    golden = json.loads((Path(__file__).parent / "golden_v1.json").read_text())
    event = codec.decode(bytes.fromhex(golden["approval_requested"]))
    assert isinstance(event, ApprovalRequested) and event.envelope.schema_version == 1
    assert (event.goal, event.requested_by, event.arguments_json, event.required_approvals) == (
        "",
        "",
        "{}",
        1,
    )
    again = codec.decode(codec.encode(requested(2)))
    assert isinstance(again, ApprovalRequested) and again.required_approvals == 2


def test_the_run_keeps_waiting_after_the_first_of_two_grants() -> None:
    goal = GoalReceived(env(GoalReceived, "run-1"), "wire 5000 USD", {}, None)  # type: ignore[arg-type]
    first = fold_batch(Loaded(), [goal, requested(2), granted(BOB)])
    run = first.runs["run-1"]
    assert (run.status, run.pending_approvals, run.approval_state) == (
        "awaiting_approval",
        1,
        "pending",
    )
    assert first.approvals["a1"].approvers == (BOB,)
    second = fold_batch(Loaded(runs=first.runs, approvals=first.approvals), [granted(CAROL)])
    run = second.runs["run-1"]
    assert (run.pending_approvals, run.approval_state) == (0, "granted")
