"""Goal templates with typed slots, and plans that refer to those slots.

``extract("Book flight to Paris on 2026-12-01")`` gives the template
``Book flight to {DESTINATION} on {DATE}`` and the slots
``{"DESTINATION": "Paris", "DATE": "2026-12-01"}``. A planned goal's steps are stored
with slot placeholders (``{{DESTINATION}}``) in place of the values, and a later goal's
values are injected back. Every check here errs towards a miss: a miss costs one model
call, a wrong plan costs a wrong action. Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

from domain.events import PlanStep
from domain.goal_structure import disagreement
from domain.slots import GoalTemplate, extract, is_relative

__all__ = ["GoalTemplate", "extract", "inject", "learn", "match", "parametrize", "reuse"]

_NUMERIC = re.compile(r"^[$€£¥]?\s?(-?\d[\d,]*(?:\.\d+)?)\s?(?:%|°\s?[CF]|[A-Za-z]{1,7})?$")
# Shorter values are replaced only where they are a whole argument: "2" inside
# "2 nights" may not be the slot's 2.
_MIN_INNER = 3
_PLACEHOLDER = re.compile(r"\{\{([A-Z][A-Z0-9_]*)(:number)?\}\}")


def parametrize(steps: Iterable[PlanStep], slots: Mapping[str, str]) -> tuple[PlanStep, ...] | None:
    """``steps`` with each slot value in their arguments replaced by its placeholder.

    None when the plan is not reusable: a slot value it never mentions (it may spell
    the value another way, say an airport code, that injection could not change), or
    arguments that already look like placeholders.
    """
    steps = tuple(steps)
    if any("{{" in s.arguments_json for s in steps):
        return None
    values = sorted(((k, v) for k, v in slots.items() if v.strip()), key=lambda kv: -len(kv[1]))
    inner = [(k, v) for k, v in values if len(v) >= _MIN_INNER]
    pattern = re.compile("|".join(rf"(?<!\w){re.escape(v)}(?!\w)" for _, v in inner) or "(?!)")
    by_value = {v: k for k, v in values}
    by_number = {_number_text(n): k for k, v in values if (n := _as_number(v)) is not None}
    used: set[str] = set()

    def swap(text: str) -> str:
        if text in by_value and len(text) < _MIN_INNER:
            return _mark(used, by_value[text])
        return pattern.sub(lambda m: _mark(used, by_value[m.group(0)]), text)

    def walk(node: object) -> object:
        if isinstance(node, str):
            return swap(node)
        if isinstance(node, bool) or not isinstance(node, int | float):
            return _map_children(node, walk)
        name = by_number.get(_number_text(node))
        return node if name is None else _mark(used, name, ":number")

    out = _rewrite(steps, walk)
    return out if used == set(slots) else None


def _leftover(steps: Iterable[PlanStep], values: Iterable[str]) -> bool:
    """Whether a replaced value still shows in the plan (``v2.4.1`` around ``2.4.1``)."""
    text = " ".join(s.arguments_json for s in steps)
    for value in values:
        if len(value) >= _MIN_INNER and value in text:
            return True
        if re.search(rf"(?<![\w.]){re.escape(value)}(?![\w]|\.\d)", text):
            return True
    return False


@dataclass(frozen=True)
class Learned:
    """What the cache stores for a planned goal.

    ``template`` is the goal's template as extracted (what is embedded, and what
    operators invalidate or share by); ``pattern`` is the template with the slots the
    plan does not take written back as values (what a new goal must agree with).
    """

    template: str
    pattern: str
    slot_names: tuple[str, ...]
    steps: tuple[PlanStep, ...]


def learn(goal: GoalTemplate, steps: Iterable[PlanStep]) -> Learned | None:
    """The reusable form of a plan for ``goal``, or None when it must not be reused.

    Slots the plan takes become placeholders. A slot the plan never mentions (it
    spelled Paris as CDG, or the value is a word like ``on-call``) is written back into
    the template as it was: only a goal with that same value can reuse the plan. None
    when a value the plan depends on cannot be followed: a relative time the plan
    resolved (``tomorrow`` -> a date), two slots with one value, or a value still
    showing after replacement.
    """
    steps = tuple(steps)
    values = list(goal.slots.values())
    used = {n for n in goal.slots if _mentioned(steps, goal.slots[n])}
    if len(set(values)) != len(values) and any(values.count(goal.slots[n]) > 1 for n in used):
        return None
    if any(is_relative(n) for n in set(goal.slots) - used):
        return None
    kept = {n: v for n, v in goal.slots.items() if n in used}
    stored = parametrize(steps, kept)
    if stored is None or _leftover(stored, kept.values()):
        return None
    pattern = fold(goal, set(goal.slots) - used).text
    return Learned(goal.text, pattern, tuple(sorted(kept)), stored)


def fold(goal: GoalTemplate, names: Iterable[str]) -> GoalTemplate:
    """``goal`` with the slots ``names`` written back as their values."""
    names = set(names)
    text = goal.text
    for name in names:
        text = text.replace("{" + name + "}", goal.slots[name])
    return GoalTemplate(text, {n: v for n, v in goal.slots.items() if n not in names})


def _mentioned(steps: tuple[PlanStep, ...], value: str) -> bool:
    return parametrize(steps, {"X": value}) is not None


def inject(steps: Iterable[PlanStep], slots: Mapping[str, str]) -> tuple[PlanStep, ...] | None:
    """Stored ``steps`` with their placeholders filled from ``slots``; None if any cannot be."""
    missing: list[str] = []

    def fill(match: re.Match[str]) -> str:
        if match.group(1) not in slots:
            missing.append(match.group(1))
            return match.group(0)
        return slots[match.group(1)]

    def walk(node: object) -> object:
        if not isinstance(node, str):
            return _map_children(node, walk)
        whole = _PLACEHOLDER.fullmatch(node)
        if whole and whole.group(2):
            number = _as_number(slots.get(whole.group(1), ""))
            if number is None:
                missing.append(whole.group(1))
            return number
        return _PLACEHOLDER.sub(fill, node)

    out = _rewrite(steps, walk)
    return None if missing else out


def referenced_slots(steps: Iterable[PlanStep]) -> frozenset[str]:
    """The slot names the stored ``steps`` refer to."""
    return frozenset(m.group(1) for s in steps for m in _PLACEHOLDER.finditer(s.arguments_json))


def fillable(
    stored_slots: Iterable[str], steps: Iterable[PlanStep], slots: Mapping[str, str]
) -> bool:
    """Whether a stored plan can serve a goal with ``slots``: the same typed slots exactly.

    An extra slot in the new goal (a date the stored plan never took) is as much a
    miss as a missing one: the plan would silently drop it.
    """
    names = set(stored_slots)
    return names == set(slots) and referenced_slots(steps) <= names


def _mark(used: set[str], name: str, kind: str = "") -> str:
    used.add(name)
    return "{{" + name + kind + "}}"


def _rewrite(steps: Iterable[PlanStep], walk: Callable[[object], object]) -> tuple[PlanStep, ...]:
    return tuple(
        replace(s, arguments_json=_dumps(walk(json.loads(s.arguments_json)))) for s in steps
    )


def _map_children(node: object, walk: Callable[[object], object]) -> object:
    if isinstance(node, dict):
        return {k: walk(v) for k, v in node.items()}
    if isinstance(node, list):
        return [walk(v) for v in node]
    return node


def _number_text(value: int | float) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _as_number(text: str) -> int | float | None:
    found = _NUMERIC.match(text.strip())
    if found is None:
        return None
    cleaned = found.group(1).replace(",", "")
    try:
        return int(cleaned)
    except ValueError:
        pass
    try:
        return float(cleaned)
    except ValueError:
        return None


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


@dataclass(frozen=True)
class Verdict:
    """A lookup's decision on one stored plan: the filled plan, or why it is a miss."""

    steps: tuple[PlanStep, ...] | None
    reason: str | None = None


def match(
    stored_pattern: str,
    stored_slots: Iterable[str],
    stored_steps: Iterable[PlanStep],
    goal: GoalTemplate,
    similarity: float,
    threshold: float,
) -> Verdict:
    """Whether a stored plan serves ``goal``, decided from the goal's structure.

    A hit needs all of: every slot the plan takes is in the goal, every other slot of
    the goal can be written back into the stored template as a literal (never a
    relative time), the two templates then ask for the same action on the same object
    with the same negations (:func:`~domain.goal_structure.disagreement`), every
    placeholder is filled, and the embedding similarity is at least ``threshold``
    (a floor against surprises, not the decision).
    """
    steps, names = tuple(stored_steps), set(stored_slots)
    if not names <= set(goal.slots):
        return Verdict(None, "slots")
    extra = set(goal.slots) - names
    if any(is_relative(n) for n in extra):
        return Verdict(None, "slots")
    folded = fold(goal, extra)
    reason = disagreement(stored_pattern, folded.text)
    if reason is not None:
        return Verdict(None, reason)
    if not fillable(names, steps, folded.slots):
        return Verdict(None, "unfillable")
    if similarity < threshold:
        return Verdict(None, "similarity")
    filled = inject(steps, folded.slots)
    return Verdict(filled, None if filled is not None else "unfillable")


def reuse(
    stored_pattern: str,
    stored_slots: Iterable[str],
    stored_steps: Iterable[PlanStep],
    goal: GoalTemplate,
    similarity: float,
    threshold: float,
) -> tuple[PlanStep, ...] | None:
    """The stored plan filled with ``goal``'s values, or None: then it is a miss."""
    return match(stored_pattern, stored_slots, stored_steps, goal, similarity, threshold).steps
