"""What the compensation stack holds for a step whose outcome is unknown. Pure: the
workflow builds these entries itself, deterministically.

A step joins the stack when its outcome settles. Completed, it brings its result. When
its activity was started and then cancelled or abandoned (timed out, worker lost) before
a result, the tool may still have had its effect (a webhook sent, a row written), so it
is undone too: with the arguments the tool was called with and no result. So is a step
that failed for good when any of its attempts ended that way, or when a tool said its
outcome is unknown (an HTTP read timeout): the activity then marks its final error
(:data:`UNKNOWN_DETAIL`). A step whose every attempt reported a definite failure is not
undone: its tool said how it ended.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sagas import messages as m
from sagas.plan import PlanInvalid, resolve_arguments


def unknown_outcome(inp: m.StepInput) -> m.CompletedStep | None:
    """The stack entry for ``inp``'s step ended without a result, or ``None`` when its
    arguments cannot be resolved (the activity refuses such a step before any effect)."""
    step = inp.step
    inputs = {k: json.loads(v) for k, v in inp.inputs.items()}
    try:
        # As the run_step activity resolves them: what compensation undoes.
        arguments = resolve_arguments(json.loads(step.arguments_json), inputs)
    except PlanInvalid:
        return None
    if not isinstance(arguments, dict):
        return None
    resolved = json.dumps(arguments, sort_keys=True)
    return m.CompletedStep(
        step_id=step.step_id,
        tool=step.tool,
        arguments_json=resolved,
        result_json="null",
        outcome=m.UNKNOWN,
    )


def to_undo(stack: list[m.CompletedStep], unknown_too: bool) -> list[m.CompletedStep]:
    """The entries to compensate, top of the stack first."""
    return [s for s in reversed(stack) if unknown_too or s.outcome == m.COMPLETED]


UNKNOWN_DETAIL = "unknown_outcome"  # in a final step error's details: undo the step


def attempt_mark(attempt: int, in_flight: bool, unknown: bool) -> dict[str, object]:
    """What an attempt of ``run_step`` heartbeats: its number, whether its tool call is
    still in flight, and whether any attempt so far may have had an effect."""
    return {"attempt": attempt, "in_flight": in_flight, "unknown": unknown}


def unknown_before(details: Sequence[Any]) -> bool:
    """Whether an earlier attempt may have acted, from the last heartbeat it left: still
    in flight (it timed out or its worker was lost) or already unknown."""
    last = details[0] if details else None
    if not isinstance(last, Mapping):
        return False  # no attempt before, or one from before attempts were marked
    return bool(last.get("in_flight")) or bool(last.get("unknown"))


def says_unknown(details: Sequence[Any]) -> bool:
    """Whether a final step error's details mark the step's outcome as unknown."""
    return any(isinstance(d, Mapping) and d.get(UNKNOWN_DETAIL) for d in details)
