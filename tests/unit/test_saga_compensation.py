"""The compensation stack's entries for steps of unknown outcome, and their undo activity."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, cast

from temporalio.testing import ActivityEnvironment

from domain.events import Event, StepCompensated, StepCompensationFailed
from sagas import messages as m
from sagas.compensation import (
    UNKNOWN_DETAIL,
    attempt_mark,
    says_unknown,
    to_undo,
    unknown_before,
    unknown_outcome,
)
from sagas.plan_source import PlanSource
from sagas.step_activities import StepActivities
from sagas.tools import ToolCall, ToolDomainError, ToolRegistry
from streams.producer import AppendResult

RUN = m.RunRef("run-1", "acme", "plan-event")


def step_input(arguments: dict[str, Any], inputs: dict[str, str] | None = None) -> m.StepInput:
    step = m.WireStep(
        step_id="s2",
        tool="http_call",
        arguments_json=json.dumps(arguments),
        depends_on=["s1"],
        compensation="undo",
    )
    return m.StepInput(RUN, step, inputs or {})


def test_an_unknown_outcome_carries_the_arguments_the_tool_was_called_with() -> None:
    inp = step_input({"url": "${s1.value}", "n": 1}, {"s1": json.dumps({"value": "http://h/x"})})
    entry = unknown_outcome(inp)
    assert entry == m.CompletedStep(
        step_id="s2",
        tool="http_call",
        arguments_json='{"n": 1, "url": "http://h/x"}',
        result_json="null",
        outcome=m.UNKNOWN,
    )


def test_arguments_that_cannot_resolve_never_reached_a_tool() -> None:
    assert unknown_outcome(step_input({"url": "${s9.value}"})) is None
    assert unknown_outcome(step_input({"url": "${s1.missing}"}, {"s1": "{}"})) is None


def test_the_stack_is_undone_top_first_and_unknown_outcomes_only_when_asked() -> None:
    def entry(step_id: str, outcome: str = m.COMPLETED) -> m.CompletedStep:
        return m.CompletedStep(
            step_id=step_id, tool="t", arguments_json="{}", result_json="{}", outcome=outcome
        )

    stack = [entry("s1"), entry("s3"), entry("s2", m.UNKNOWN), entry("s4")]
    assert [s.step_id for s in to_undo(stack, True)] == ["s4", "s2", "s3", "s1"]
    assert [s.step_id for s in to_undo(stack, False)] == ["s4", "s3", "s1"]


class ListAppender:
    def __init__(self) -> None:
        self.events: list[Event] = []

    async def append(self, event: Event) -> AppendResult:
        self.events.append(event)
        return AppendResult(event.envelope.event_id, "runs", 0, len(self.events) - 1)

    async def append_many(self, events: Sequence[Event]) -> list[AppendResult]:
        return [await self.append(e) for e in events]


class Undo:
    """A tool whose compensation records what it was handed, or refuses."""

    name, compensation, description = "http_call", "undo", "Test tool."

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.handed: list[Mapping[str, Any] | None] = []

    async def run(self, call: ToolCall) -> dict[str, Any]:
        return {}

    async def compensate(self, call: ToolCall, result: Mapping[str, Any] | None) -> dict[str, Any]:
        self.handed.append(result)
        if self.refuse:
            raise ToolDomainError("receiver said no")
        return {"undone": call.arguments["url"]}


async def compensate(tool: Undo, entry: m.CompletedStep) -> tuple[m.CompensateOutput, Event]:
    appender = ListAppender()
    acts = StepActivities(appender, ToolRegistry([tool]), cast(PlanSource, None), None)  # type: ignore[arg-type]
    out = await ActivityEnvironment().run(
        acts.compensate_step,
        m.CompensateInput(run=RUN, step=entry, compensation="undo", max_attempts=1),
    )
    [event] = appender.events
    return out, event


async def test_an_unknown_outcome_is_undone_without_a_result_and_the_event_says_so() -> None:
    tool = Undo()
    entry = unknown_outcome(step_input({"url": "http://h/x"}))
    assert entry is not None
    out, event = await compensate(tool, entry)
    assert out == m.CompensateOutput("s2", True)
    assert tool.handed == [None]
    assert isinstance(event, StepCompensated) and event.compensation_tool == "undo"
    assert json.loads(event.result_json) == {"undone": "http://h/x", "step_outcome": "unknown"}


async def test_a_completed_step_is_undone_with_its_result() -> None:
    tool = Undo()
    entry = m.CompletedStep(
        step_id="s2",
        tool="http_call",
        arguments_json='{"url": "http://h/x"}',
        result_json='{"status": 201}',
    )
    _, event = await compensate(tool, entry)
    assert tool.handed == [{"status": 201}]
    assert isinstance(event, StepCompensated)
    assert json.loads(event.result_json)["step_outcome"] == "completed"


async def test_a_failed_undo_of_an_unknown_outcome_says_so() -> None:
    entry = unknown_outcome(step_input({"url": "http://h/x"}))
    assert entry is not None
    out, event = await compensate(Undo(refuse=True), entry)
    assert not out.compensated
    assert isinstance(event, StepCompensationFailed)
    assert event.error_message == "step outcome unknown; ToolDomainError: receiver said no"


def test_an_attempt_lost_in_flight_or_unknown_makes_the_next_one_unknown() -> None:
    assert not unknown_before([])  # the first attempt
    assert not unknown_before([None])  # an attempt from before attempts were marked
    assert unknown_before([attempt_mark(1, True, False)])  # timed out or lost mid-call
    assert not unknown_before([attempt_mark(1, False, False)])  # it reported its failure
    assert unknown_before([attempt_mark(2, False, True)])  # an earlier one was unknown
    assert says_unknown([{UNKNOWN_DETAIL: True}]) and not says_unknown([])
