"""Recorded AgentWorkflow histories replay against today's workflow code.

A change to ``sagas/workflow.py`` that would make an open run take a different path on
replay fails here. Record new histories with ``python -m tests.histories.record`` after a
deliberate change made behind ``workflow.patched()``; keep the old ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from sagas import messages as m
from sagas.workflow import UNDO_UNKNOWN_PATCH, WITHDRAW_PATCH, AgentWorkflow

HISTORIES = {
    p.stem: p.read_text() for p in (Path(__file__).parent.parent / "histories").glob("*.json")
}
EXPECTED = {
    "happy_dag",
    "failure_compensation",
    "approval_granted",
    "approval_denied",
    "approval_timeout",
    "cancelled",
    "cancelled_in_flight",
    "continue_as_new",
    "refused",
}


@workflow.defn(name="AgentWorkflow")
class TimerFirstWorkflow:
    """A non-deterministic "change": a timer where the history has the guardian activity."""

    @workflow.run
    async def run(self, inp: m.RunInput) -> m.RunResult:
        await workflow.sleep(1)
        return m.RunResult(run_id=inp.run_id, status="completed")


def test_every_scenario_has_a_recorded_history() -> None:
    assert set(HISTORIES) >= EXPECTED


@pytest.mark.parametrize("name", sorted(HISTORIES))
async def test_history_replays_deterministically(name: str) -> None:
    history = WorkflowHistory.from_json(name, HISTORIES[name])
    result = await Replayer(workflows=[AgentWorkflow]).replay_workflow(
        history, raise_on_replay_failure=False
    )
    assert result.replay_failure is None, f"{name}: {result.replay_failure!r}"


def test_the_in_flight_cancel_history_takes_the_patched_path() -> None:
    history = WorkflowHistory.from_json("cancelled_in_flight", HISTORIES["cancelled_in_flight"])
    patches = [
        json.loads(e.marker_recorded_event_attributes.details["patch-data"].payloads[0].data)
        for e in history.events
        if e.HasField("marker_recorded_event_attributes")
    ]
    assert [p["id"] for p in patches] == [UNDO_UNKNOWN_PATCH]
    undone = [
        e
        for e in history.events
        if e.activity_task_scheduled_event_attributes.activity_type.name == "compensate_step"
    ]
    assert len(undone) == 2  # the wait in flight, then the record


async def test_the_unknown_outcome_change_needs_its_patch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without ``workflow.patched`` the run cancelled before it would take a new path."""
    monkeypatch.setattr(workflow, "patched", lambda patch_id: True)
    history = WorkflowHistory.from_json("cancelled", HISTORIES["cancelled"])
    result = await Replayer(workflows=[AgentWorkflow]).replay_workflow(
        history, raise_on_replay_failure=False
    )
    assert result.replay_failure is not None


async def test_a_non_deterministic_change_is_caught() -> None:
    history = WorkflowHistory.from_json("happy_dag", HISTORIES["happy_dag"])
    result = await Replayer(workflows=[TimerFirstWorkflow]).replay_workflow(
        history, raise_on_replay_failure=False
    )
    assert result.replay_failure is not None


def test_the_withdrawn_history_takes_the_withdraw_patch() -> None:
    history = WorkflowHistory.from_json("approval_withdrawn", HISTORIES["approval_withdrawn"])
    patches = [
        json.loads(e.marker_recorded_event_attributes.details["patch-data"].payloads[0].data)
        for e in history.events
        if e.HasField("marker_recorded_event_attributes")
    ]
    assert WITHDRAW_PATCH in [p["id"] for p in patches]
    names = [e.activity_task_scheduled_event_attributes.activity_type.name for e in history.events]
    assert "record_approval_withdrawn" in names
