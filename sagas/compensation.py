"""What the compensation stack holds for a step whose outcome is unknown. Pure: the
workflow builds these entries itself, deterministically.

A step joins the stack when its outcome settles. Completed, it brings its result. When
its activity was started and then cancelled or abandoned (timed out, worker lost) before
a result, the tool may still have had its effect (a webhook sent, a row written), so it
is undone too: with the arguments the tool was called with and no result. A step whose
activity reported its own failure is not undone, as before: its tool said how it ended.
"""

from __future__ import annotations

import json

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
