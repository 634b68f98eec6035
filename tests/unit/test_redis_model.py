"""The Redis live views' commands: per-run dedupe sets and bounded lifetimes."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from domain.events import AuditRecorded, Event
from projections.fold import Loaded, fold_batch
from projections.redis_model import Keyspace, Retention, redis_commands
from tests.factories import AT, all_events, env
from tests.unit.test_projection_folds import happy_run

KS = Keyspace("p", "g0")
DAY = Retention(timedelta(days=1))


def commands(events: list[Event], now_offset: timedelta) -> list[list[str | int]]:
    return redis_commands(KS, fold_batch(Loaded(), events), events, DAY, AT + now_offset)


def expiries(cmds: list[list[str | int]]) -> dict[str | int, str | int]:
    return {c[1]: c[2] for c in cmds if c[0] == "EXPIREAT"}


def test_each_runs_event_ids_go_to_that_runs_own_set() -> None:
    one, two = happy_run("r1"), happy_run("r2")
    cmds = commands([*one, *two[:2]], timedelta(0))
    sadd = {c[1]: set(c[2:]) for c in cmds if c[0] == "SADD" and "seen" in str(c[1])}
    assert sadd == {
        KS.run_seen("r1"): {e.envelope.event_id for e in one},
        KS.run_seen("r2"): {e.envelope.event_id for e in two[:2]},
    }


def test_a_finished_run_expires_retention_after_it_ended_and_a_running_one_never() -> None:
    finished, running = happy_run("r1"), happy_run("r2")[:4]
    cmds = commands([*finished, *running], timedelta(minutes=5))
    due = int((AT + timedelta(days=1)).timestamp())  # happy_run ends at AT
    assert expiries(cmds) == {KS.run("r1"): due, KS.run_seen("r1"): due}
    last_write = max(i for i, c in enumerate(cmds) if c[0] != "EXPIREAT")
    assert all(c[0] == "EXPIREAT" for c in cmds[last_write + 1 :])  # after the writes


def test_history_past_due_still_lives_for_the_grace_period() -> None:
    """A rebuild replaying old runs keeps each one long enough to catch duplicates."""
    cmds = commands(happy_run("r1"), timedelta(days=30))
    at = int((AT + timedelta(days=30) + DAY.grace).timestamp())
    assert set(expiries(cmds).values()) == {at}


def test_audit_records_are_deduped_per_day_and_that_set_expires() -> None:
    audit = next(e for e in all_events() if isinstance(e, AuditRecorded))
    later = dataclasses.replace(
        audit,
        envelope=dataclasses.replace(
            env(AuditRecorded, "audit-acme", "y"), occurred_at=AT + timedelta(days=1)
        ),
    )
    cmds = commands([audit, later], timedelta(0))
    day, next_day = AT.date().isoformat(), (AT + timedelta(days=1)).date().isoformat()
    sadd = {c[1]: c[2:] for c in cmds if c[0] == "SADD" and "seen" in str(c[1])}
    assert sadd == {
        KS.audit_seen(day): [audit.envelope.event_id],
        KS.audit_seen(next_day): [later.envelope.event_id],
    }
    midnight = AT.replace(hour=0, minute=0, second=0, microsecond=0)
    assert expiries(cmds)[KS.audit_seen(day)] == int((midnight + timedelta(days=2)).timestamp())


def test_past_due_judges_a_run_by_its_view_and_audit_sets_by_their_day() -> None:
    run = fold_batch(Loaded(), happy_run("r1")).runs["r1"]
    view = run.to_json()
    soon, late = AT + timedelta(hours=23), AT + timedelta(days=1, seconds=1)
    assert not DAY.past_due("run:r1", view, soon) and DAY.past_due("run:r1", view, late)
    assert DAY.past_due("seen:run:r1", view, late) and not DAY.past_due("seen:run:r1", view, soon)
    assert DAY.past_due("seen:run:r1", None, soon)  # its view is gone
    running = fold_batch(Loaded(), happy_run("r2")[:4]).runs["r2"].to_json()
    assert not DAY.past_due("run:r2", running, AT + timedelta(days=365))
    day = AT.date().isoformat()
    assert not DAY.past_due(f"seen:audit:{day}", None, AT + timedelta(hours=30))
    assert DAY.past_due(f"seen:audit:{day}", None, AT + timedelta(days=2))
    assert not DAY.past_due("tenant:acme:counters", None, AT + timedelta(days=999))
