"""Recorded AgentWorkflow histories replay against today's workflow code.

A change to ``sagas/workflow.py`` that would make an open run take a different path on
replay fails here. Record new histories with ``python -m tests.histories.record`` after a
deliberate change made behind ``workflow.patched()``; keep the old ones.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from sagas import messages as m
from sagas.workflow import AgentWorkflow

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
    "continue_as_new",
    "refused",
}


@workflow.defn(name="AgentWorkflow")
class TimerFirstWorkflow:
    """A non-deterministic "change": a timer where the history has the guardian activity."""

    @workflow.run
    async def run(self, inp: m.RunInput) -> m.RunResult:
        await workflow.sleep(1)
        return m.RunResult(inp.run_id, "completed")


def test_every_scenario_has_a_recorded_history() -> None:
    assert set(HISTORIES) >= EXPECTED


@pytest.mark.parametrize("name", sorted(HISTORIES))
async def test_history_replays_deterministically(name: str) -> None:
    history = WorkflowHistory.from_json(name, HISTORIES[name])
    result = await Replayer(workflows=[AgentWorkflow]).replay_workflow(
        history, raise_on_replay_failure=False
    )
    assert result.replay_failure is None, f"{name}: {result.replay_failure!r}"


async def test_a_non_deterministic_change_is_caught() -> None:
    history = WorkflowHistory.from_json("happy_dag", HISTORIES["happy_dag"])
    result = await Replayer(workflows=[TimerFirstWorkflow]).replay_workflow(
        history, raise_on_replay_failure=False
    )
    assert result.replay_failure is not None
