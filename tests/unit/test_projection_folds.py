"""Unit tests for every projection fold: runs, approvals, KPIs, timeline, batches."""

from __future__ import annotations

import json
import random
from datetime import timedelta

from domain.approval_view import evolve_approval
from domain.events import (
    ApprovalDenied,
    ApprovalGranted,
    ApprovalRequested,
    Event,
    GoalAssessed,
    GoalReceived,
    PlanGenerated,
    PlanStep,
    RunCancelled,
    RunCancelRequested,
    RunCompleted,
    RunFailed,
    StepCompensated,
    StepCompleted,
    StepFailed,
    StepStarted,
)
from domain.kpis import kpi_delta, percentile, run_duration
from domain.run_view import RUN_EVENTS, RunView, evolve_run
from domain.timeline import payload, summarize
from projections.fold import Loaded, fold_batch
from tests.factories import AT, all_events, env

STEP = PlanStep("s1", "http_call", "{}")


def happy_run(run_id: str = "r1", tenant: str = "acme", cache: bool = False) -> list[Event]:
    def e(cls: type[Event], *disc: str | int) -> object:
        return env(cls, run_id, *disc, tenant=tenant)

    return [
        GoalReceived(e(GoalReceived), "Book flight", {}, None),  # type: ignore[arg-type]
        GoalAssessed(e(GoalAssessed), "Book flight", 0.2, (), True),  # type: ignore[arg-type]
        PlanGenerated(e(PlanGenerated), "p1", (STEP, STEP), "llm", cache),  # type: ignore[arg-type]
        StepStarted(e(StepStarted, "s1", 1), "s1", "http_call", 1),  # type: ignore[arg-type]
        StepCompleted(e(StepCompleted, "s1"), "s1", "http_call", 1, "{}", 5),  # type: ignore[arg-type]
        RunCompleted(e(RunCompleted), 2, 1500, "{}"),  # type: ignore[arg-type]
    ]


def fold(events: list[Event]) -> RunView:
    run: RunView | None = None
    for ev in events:
        run = evolve_run(run, ev)
    assert run is not None
    return run


def test_a_happy_run_ends_completed_with_counts_and_duration() -> None:
    run = fold(happy_run())
    assert (run.status, run.goal, run.steps_planned, run.steps_started) == (
        "completed",
        "Book flight",
        2,
        1,
    )
    assert (run.steps_completed, run.duration_ms, run.ended_at) == (1, 1500, AT)
    assert run.event_count == 6 and run.last_event_type == "run_completed"
    assert run.risk_score == 0.2 and run.cache_hit is False


def test_statuses_follow_the_lifecycle() -> None:
    statuses = []
    run = None
    for ev in happy_run():
        run = evolve_run(run, ev)
        statuses.append(run.status)
    assert statuses == ["received", "assessed", "planned", "running", "running", "completed"]


def test_a_finished_run_is_not_reopened_by_late_events() -> None:
    events = happy_run()
    late = RunCancelRequested(env(RunCancelRequested, "r1"), "late", "user:x")
    failed = RunFailed(env(RunFailed, "r1"), "boom", None, (), 9)
    run = fold([*events, late, failed])
    assert run.status == "completed" and run.duration_ms == 1500 and run.outcome_reason is None
    assert run.event_count == 8


def test_rejected_goal_records_the_reasons() -> None:
    run = fold([happy_run()[0], GoalAssessed(env(GoalAssessed, "r1"), "x", 0.99, ("pii",), False)])
    assert run.status == "rejected" and run.outcome_reason == "pii" and run.risk_score == 0.99


def test_approval_wait_then_grant_resumes_the_run() -> None:
    req = ApprovalRequested(
        env(ApprovalRequested, "r1", "a1"),
        "a1",
        "s1",
        "wire",
        0.9,
        ("big",),
        AT + timedelta(hours=1),
    )
    grant = ApprovalGranted(env(ApprovalGranted, "r1", "a1"), "a1", "s1", "alice", "ok")
    waiting = fold([*happy_run()[:3], req])
    assert (waiting.status, waiting.approval_state, waiting.pending_approvals) == (
        "awaiting_approval",
        "pending",
        1,
    )
    resumed = evolve_run(waiting, grant)
    assert (resumed.status, resumed.approval_state, resumed.pending_approvals) == (
        "running",
        "granted",
        0,
    )


def test_timed_out_denial_marks_approval_expired_and_failure_compensates() -> None:
    req = ApprovalRequested(
        env(ApprovalRequested, "r1", "a1"), "a1", "s1", "wire", 0.9, (), AT + timedelta(hours=1)
    )
    deny = ApprovalDenied(env(ApprovalDenied, "r1", "a1"), "a1", "s1", "system", None, True)
    fail = StepFailed(env(StepFailed, "r1", "s1", 1), "s1", "wire", 1, "Denied", "no", False, True)
    comp = StepCompensated(env(StepCompensated, "r1", "s0"), "s0", "t", "undo", "{}")
    end = RunFailed(env(RunFailed, "r1"), "denied", "s1", ("s0",), 70)
    run = fold([*happy_run()[:3], req, deny, fail, comp, end])
    assert run.approval_state == "expired" and run.steps_failed == 1
    assert run.steps_compensated == 1 and run.status == "failed" and run.outcome_reason == "denied"


def test_cancelled_run_duration_is_measured_from_its_first_event() -> None:
    later = env(RunCancelled, "r1")
    later = type(later)(
        **{
            **{f: getattr(later, f) for f in later.__slots__},
            "occurred_at": AT + timedelta(seconds=3),
        }
    )
    run = fold([happy_run()[0], RunCancelled(later, "asked", "user:c", ())])
    assert run.status == "cancelled" and run.duration_ms == 3000


def test_run_view_json_round_trip() -> None:
    run = fold(happy_run())
    assert RunView.from_json(run.to_json()) == run


def test_approval_fold_first_decision_wins() -> None:
    req, granted = all_events()[8:10]
    pending = evolve_approval(None, req)
    assert (
        pending is not None
        and pending.status == "pending"
        and pending.reasons == ("amount over limit",)
    )
    decided = evolve_approval(pending, granted)
    assert decided is not None and decided.status == "granted" and decided.decided_by == "alice"
    assert decided.decided_at == AT and decided.reason == "fine"
    again = ApprovalDenied(env(ApprovalDenied, "run-1", "a1"), "a1", "s4", "bob", "no", False)
    assert evolve_approval(decided, again) == decided
    assert evolve_approval(None, granted) is None  # a decision for an unknown approval


def test_kpi_counts_an_ending_once() -> None:
    events = happy_run(cache=True)
    run = None
    deltas = []
    for ev in [*events, RunFailed(env(RunFailed, "r1"), "late", None, (), 1)]:
        after = evolve_run(run, ev)
        deltas.append(kpi_delta(run, after, ev))
        run = after
    got = [d for d in deltas if d is not None]
    assert [(d.goals, d.cache_hits, d.completions, d.failures) for d in got] == [
        (1, 0, 0, 0),
        (0, 1, 0, 0),
        (0, 0, 1, 0),
    ]
    assert got[0].minute == AT.replace(second=0, microsecond=0)


def test_run_duration_only_when_the_run_ends() -> None:
    events = happy_run()
    before = fold(events[:-1])
    after = evolve_run(before, events[-1])
    assert run_duration(before, before) is None
    sample = run_duration(before, after)
    assert sample is not None and sample.duration_ms == 1500 and sample.tenant_id == "acme"


def test_percentile_interpolates_like_postgres() -> None:
    assert percentile([], 0.5) is None
    assert percentile([10], 0.95) == 10
    assert percentile([10, 20, 30, 40], 0.5) == 25
    assert percentile(list(range(1, 101)), 0.95) == 95.05


def test_every_event_type_has_a_summary_and_a_json_payload() -> None:
    for ev in all_events():
        if not isinstance(ev, RUN_EVENTS):
            continue
        text = summarize(ev)
        assert text and text != ev.envelope.event_type
        json.dumps(payload(ev))
    plan = payload(all_events()[2])
    assert plan["steps"][0]["depends_on"] == ["s0"] and plan["template_slots"] == {
        "DESTINATION": "Paris"
    }


def test_fold_batch_skips_duplicates_and_numbers_the_timeline() -> None:
    events = happy_run()
    changes = fold_batch(Loaded(), [events[0], events[1], events[0], *events[2:], events[3]])
    assert changes.duplicates == 2
    assert [t.seq for t in changes.timeline] == [1, 2, 3, 4, 5, 6]
    assert changes.runs["r1"].status == "completed"
    assert changes.runs_before == {"r1": None}
    assert len(changes.durations) == 1
    assert changes.applied_ids == [e.envelope.event_id for e in events]


def test_fold_batch_continues_from_loaded_state_and_applied_ids() -> None:
    events = happy_run()
    first = fold_batch(Loaded(), events[:3])
    loaded = Loaded(runs=dict(first.runs), applied_ids=set(first.applied_ids))
    second = fold_batch(loaded, events)  # the first three again: a redelivery
    assert second.duplicates == 3 and [t.seq for t in second.timeline] == [4, 5, 6]
    assert second.runs["r1"] == fold(events)


def test_fold_batch_routes_audit_and_approvals() -> None:
    changes = fold_batch(Loaded(), all_events())
    assert [a.action for a in changes.audit] == ["login"]
    assert set(changes.approvals) == {"a1"}  # a2 was decided without a request
    assert changes.approvals["a1"].status == "granted"
    assert set(changes.runs) == {"run-1"}  # audit and control-plane events are no runs
    assert changes.ignored == len(all_events()) - 17  # 16 run events and subject_erased


def test_interleaving_runs_differently_gives_the_same_rows() -> None:
    runs = [happy_run(f"r{i}", tenant=f"t{i % 2}", cache=i % 3 == 0) for i in range(6)]
    in_order = fold_batch(Loaded(), [e for r in runs for e in r])
    rng = random.Random(7)
    queues = [list(r) for r in runs]
    shuffled: list[Event] = []
    while any(queues):
        q = rng.choice([q for q in queues if q])
        shuffled.append(q.pop(0))
    other = fold_batch(Loaded(), shuffled)
    assert other.runs == in_order.runs and other.kpis == in_order.kpis
    assert sorted(other.timeline, key=lambda t: t.event_id) == sorted(
        in_order.timeline, key=lambda t: t.event_id
    )
    assert other.kpis[("t0", AT.replace(second=0, microsecond=0))].goals == 3


def test_kpis_count_plans_model_calls_and_cache_hits() -> None:
    """Hit rate is cache_hits / plans; every hit is a model call saved; rules cost none."""

    def plan(run_id: str, planner: str, from_cache: bool) -> PlanGenerated:
        step = PlanStep("s1", "transform", "{}")
        return PlanGenerated(env(PlanGenerated, run_id), "p", (step,), planner, from_cache)

    cases = {
        "openai/gpt-4o-mini": (False, {"plans": 1, "model_calls": 1, "cache_hits": 0}),
        "cache:openai/gpt-4o-mini": (True, {"plans": 1, "model_calls": 0, "cache_hits": 1}),
        "rules": (False, {"plans": 1, "model_calls": 0, "cache_hits": 0}),
    }
    for planner, (from_cache, want) in cases.items():
        run_id = f"run-{planner}"
        event = plan(run_id, planner, from_cache)
        before = evolve_run(None, GoalReceived(env(GoalReceived, run_id), "g", {}, None))
        delta = kpi_delta(before, evolve_run(before, event), event)
        assert delta is not None
        assert {k: getattr(delta, k) for k in want} == want, planner
