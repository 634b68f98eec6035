"""Plans as data: validation of a proposed plan and the pure DAG helpers.

A planner (an LLM or the rules) proposes a plan as JSON. :func:`validate_plan` turns it
into :class:`domain.events.PlanStep` values or raises :class:`PlanInvalid` with a
machine-readable reason: ``malformed`` (not the expected shape), ``duplicate_step``,
``unknown_tool``, ``dangling_dependency`` or ``cycle``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from domain.events import PlanStep

MAX_STEPS = 50
# ``${step.field}``: distinct from the plan cache's ``{{SLOT}}`` placeholders on purpose.
_REF = re.compile(r"\$\{\s*([A-Za-z0-9_-]+)((?:\.[A-Za-z0-9_-]+)*)\s*\}")


class PlanInvalid(Exception):
    """The proposed plan cannot run; ``reason`` is one short code, ``detail`` says why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class StepSpec(BaseModel):
    """One proposed step, as a planner writes it."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    tool: str = Field(min_length=1, max_length=64)
    arguments: dict[str, Any] = Field(default_factory=dict)
    depends_on: list[str] = Field(default_factory=list, max_length=MAX_STEPS)
    risk: float = Field(default=0.0, ge=0.0, le=1.0)
    compensation: str | None = None
    timeout_s: float = Field(default=30.0, gt=0.0, le=3600.0)
    max_attempts: int = Field(default=3, ge=1, le=10)


class PlanSpec(BaseModel):
    """A proposed plan: at least one step."""

    model_config = ConfigDict(extra="ignore")

    steps: list[StepSpec] = Field(min_length=1, max_length=MAX_STEPS)


def validate_plan(
    raw: Mapping[str, Any] | str, compensations: Mapping[str, str]
) -> tuple[PlanStep, ...]:
    """The validated steps of ``raw``; ``compensations`` maps known tools to their undo."""
    spec = _parse(raw)
    seen: set[str] = set()
    for step in spec.steps:
        if step.id in seen:
            raise PlanInvalid("duplicate_step", f"step id {step.id!r} appears twice")
        seen.add(step.id)
        if step.tool not in compensations:
            known = ", ".join(sorted(compensations))
            raise PlanInvalid(
                "unknown_tool", f"step {step.id!r} uses {step.tool!r}; known: {known}"
            )
    for step in spec.steps:
        for dep in step.depends_on:
            if dep not in seen:
                raise PlanInvalid(
                    "dangling_dependency", f"step {step.id!r} depends on missing {dep!r}"
                )
    steps = tuple(_to_step(s, compensations[s.tool]) for s in spec.steps)
    topological_order(steps)
    return steps


def _parse(raw: Mapping[str, Any] | str) -> PlanSpec:
    try:
        data = json.loads(raw) if isinstance(raw, str) else raw
        return PlanSpec.model_validate(data)
    except (ValueError, ValidationError) as exc:
        raise PlanInvalid("malformed", _short(exc)) from exc


def _short(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"{where}: {first['msg']} ({exc.error_count()} error(s))"
    return str(exc)[:300]


def _to_step(spec: StepSpec, compensation: str) -> PlanStep:
    return PlanStep(
        step_id=spec.id,
        tool=spec.tool,
        arguments_json=json.dumps(spec.arguments, sort_keys=True),
        depends_on=tuple(dict.fromkeys(spec.depends_on)),
        risk=spec.risk,
        # The registry, not the planner, knows how a tool is undone.
        compensation=compensation,
        timeout_s=spec.timeout_s,
        max_attempts=spec.max_attempts,
    )


def topological_order(steps: Sequence[DagNode]) -> list[str]:
    """Step ids in an order where every step follows its dependencies (Kahn).

    Raises :class:`PlanInvalid` ``cycle`` naming the steps caught in one.
    """
    pending = {s.step_id: set(s.depends_on) for s in steps}
    order: list[str] = []
    while pending:
        ready = [sid for sid, deps in pending.items() if not deps]
        if not ready:
            raise PlanInvalid("cycle", "steps depend on each other: " + ", ".join(sorted(pending)))
        for sid in ready:
            del pending[sid]
            order.append(sid)
        for deps in pending.values():
            deps.difference_update(ready)
    return order


class DagNode(Protocol):
    """Anything with a step id and the ids it depends on."""

    @property
    def step_id(self) -> str: ...

    @property
    def depends_on(self) -> Sequence[str]: ...


Node = TypeVar("Node", bound=DagNode)


def ready_steps(
    steps: Iterable[Node], finished: Iterable[str], started: Iterable[str]
) -> list[Node]:
    """Steps not yet started whose dependencies have all finished, in plan order."""
    done, begun = set(finished), set(started)
    return [
        s
        for s in steps
        if s.step_id not in begun and s.step_id not in done and all(d in done for d in s.depends_on)
    ]


def resolve_arguments(arguments: Any, inputs: Mapping[str, Any]) -> Any:
    """``arguments`` with ``"${step.field.sub}"`` references replaced by inputs' values.

    A string that is exactly one reference becomes the referenced value (any JSON); a
    reference inside a longer string is formatted into it. An unknown reference is a
    :class:`PlanInvalid` ``dangling_reference``.
    """
    if isinstance(arguments, dict):
        return {k: resolve_arguments(v, inputs) for k, v in arguments.items()}
    if isinstance(arguments, list):
        return [resolve_arguments(v, inputs) for v in arguments]
    if not isinstance(arguments, str):
        return arguments
    whole = _REF.fullmatch(arguments.strip())
    if whole:
        return _lookup(inputs, whole.group(1), whole.group(2))
    return _REF.sub(lambda m: _as_text(_lookup(inputs, m.group(1), m.group(2))), arguments)


def _lookup(inputs: Mapping[str, Any], step_id: str, path: str) -> Any:
    if step_id not in inputs:
        raise PlanInvalid("dangling_reference", f"no result of step {step_id!r} is an input")
    value = inputs[step_id]
    for part in filter(None, path.split(".")):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise PlanInvalid("dangling_reference", f"{step_id}{path}: no field {part!r}")
    return value


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
