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

_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_DAY = r"(?:mon|tues|wednes|thurs|fri|satur|sun)day"
_ID_WORDS = (
    "order|invoice|ticket|account|booking|reservation|issue|case|customer|user|shipment"
    "|subscription|contract|payment|transaction|pr|pull request"
)
_PLACE_TYPES = {"to": "DESTINATION", "from": "ORIGIN"}
_PROPER = r"[A-Z][a-z]+(?:[ -](?:[A-Z][a-z]+))*"

# (slot type, pattern), by priority: an earlier pattern's match wins an overlap.
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(rx, flags))
    for kind, rx, flags in (
        (
            "QUOTED",
            "(?:(?<=\\s)|^)[\"\u201c'\u2018](?P<v>[^\"\u201d'\u2019]+)[\"\u201d'\u2019](?=[\\s,.;:!?]|$)",
            0,
        ),
        ("URL", r"(?P<v>https?://[^\s<>\"]+[^\s<>\".,;:!?)])", 0),
        ("EMAIL", r"(?P<v>[\w.+-]+@[\w-]+(?:\.[\w-]+)+)", 0),
        (
            "MONEY",
            r"(?P<v>[$€£]\s?\d[\d,]*(?:\.\d+)?|\d[\d,]*(?:\.\d+)?\s?(?:usd|eur|gbp"
            r"|dollars?|euros?|pounds?)\b)",
            re.I,
        ),
        (
            "DATE",
            rf"(?P<v>\b\d{{4}}-\d{{2}}-\d{{2}}\b|\b\d{{1,2}}/\d{{1,2}}(?:/\d{{2,4}})?\b"
            rf"|\b{_MONTH}\.? \d{{1,2}}(?:st|nd|rd|th)?(?:,? \d{{4}})?\b"
            rf"|\b\d{{1,2}}(?:st|nd|rd|th)? (?:of )?{_MONTH}\b(?:,? \d{{4}})?"
            rf"|\b(?:(?:next|this|last) )?{_DAY}\b|\b(?:today|tomorrow|tonight|yesterday)\b"
            rf"|\b(?:next|this|last) (?:week|month|year)\b)",
            re.I,
        ),
        ("TIME", r"(?P<v>\b\d{1,2}:\d{2}(?:\s?[ap]\.?m\.?)?|\b\d{1,2}\s?[ap]\.?m\.?)(?!\w)", re.I),
        (
            "ID",
            rf"\b(?P<k>{_ID_WORDS})(?:\s+(?:id|number|no\.?))?\s*#?\s*(?P<v>[A-Za-z]*\d[\w-]*)",
            re.I,
        ),
        ("NUMBER", r"(?<![\w.])(?P<v>\d+(?:\.\d+)?)(?!\w)", 0),
        ("PLACE", rf"\b(?P<k>to|from|in|at|near|via|for|with)\s+(?P<v>{_PROPER})\b", 0),
        ("NAME", rf"(?<=[a-z,] )(?P<v>{_PROPER})\b", 0),
    )
)


@dataclass(frozen=True)
class GoalTemplate:
    """A goal with its slot values masked by their types."""

    text: str
    slots: Mapping[str, str]

    @property
    def slot_names(self) -> tuple[str, ...]:
        return tuple(sorted(self.slots))


def extract(goal: str) -> GoalTemplate:
    """The template and slot values of ``goal`` (whitespace normalised)."""
    text = " ".join(goal.split()).rstrip(".!")
    spans: list[tuple[int, int, str]] = []
    for kind, pattern in _PATTERNS:
        for match in pattern.finditer(text):
            start, end = match.span("v")
            if not any(s < end and start < e for s, e, _ in spans):
                spans.append((start, end, _slot_type(kind, match)))
    out, slots, last, seen = [], {}, 0, dict[str, int]()
    for start, end, kind in sorted(spans):
        seen[kind] = seen.get(kind, 0) + 1
        name = kind if seen[kind] == 1 else f"{kind}_{seen[kind]}"
        slots[name] = text[start:end]
        out.append(text[last:start] + "{" + name + "}")
        last = end
    return GoalTemplate("".join(out) + text[last:], slots)


def _slot_type(kind: str, match: re.Match[str]) -> str:
    if kind == "ID":
        return match.group("k").upper().replace(" ", "_") + "_ID"
    if kind == "MONEY":
        return "MONEY_" + _currency(match.group("v"))
    if kind == "PLACE":
        word = match.group("k")
        if word in ("for", "with"):
            return "NAME"
        return _PLACE_TYPES.get(word, "LOCATION")
    return kind


def _currency(text: str) -> str:
    lowered = text.lower()
    for code, marks in _CURRENCIES.items():
        if any(m in lowered for m in marks):
            return code
    return "UNKNOWN"


_NOT_DIGITS = re.compile(r"(?i)[$€£,\s]|usd|eur|gbp|dollars?|euros?|pounds?")
_CURRENCIES = {"USD": ("$", "usd", "dollar"), "EUR": ("€", "eur"), "GBP": ("£", "gbp", "pound")}
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
    pattern = re.compile("|".join(rf"(?<!\w){re.escape(v)}(?!\w)" for _, v in values))
    by_value = {v: k for k, v in values}
    by_number = {_number_text(n): k for k, v in values if (n := _as_number(v)) is not None}
    used: set[str] = set()

    def swap(text: str) -> str:
        if not values:
            return text
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


_STOP = frozenset(
    re.findall(
        r"\w+",
        "a an the to for of in on at and or please my me our your with from by is be this that"
        " it its all can could you i we us would like want need some any up out about into",
    )
)
_WORD = re.compile(r"[a-z]+")


def conflicting_words(stored_template: str, template: str, steps: Iterable[PlanStep]) -> set[str]:
    """Words of the stored template missing from the new one that the stored plan uses.

    Similar templates can still differ in a word that decides what the plan does ("buy"
    and "sell" score 0.92); if the plan mentions such a word it is not the same plan.
    """
    ours = {_stem(w) for w in _words(template)}
    differing = {_stem(w) for w in _words(stored_template)} - ours
    if not differing:
        return set()
    used: set[str] = set()
    for s in steps:
        text = " ".join((s.tool, s.compensation or "", s.arguments_json))
        spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", text).replace("_", " ")
        used |= {_stem(w) for w in _words(spaced)}
    return differing & used


def _words(text: str) -> list[str]:
    text = re.sub(r"\{\{?[A-Z0-9_:]+\}?\}", " ", text)
    return [w for w in _WORD.findall(text.lower()) if len(w) > 2 and w not in _STOP]


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s", "ion", "ly"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


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
    cleaned = _NOT_DIGITS.sub("", text)
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


def reuse(
    stored_template: str,
    stored_slots: Iterable[str],
    stored_steps: Iterable[PlanStep],
    goal: GoalTemplate,
    similarity: float,
    threshold: float,
) -> tuple[PlanStep, ...] | None:
    """The stored plan filled with ``goal``'s values, or None: then it is a miss.

    A hit needs the similarity of the two templates at or above ``threshold``, the same
    typed slots, every placeholder filled, and no deciding word of the stored goal that
    the new goal lacks.
    """
    steps = tuple(stored_steps)
    if similarity < threshold or not fillable(stored_slots, steps, goal.slots):
        return None
    if conflicting_words(stored_template, goal.text, steps):
        return None
    return inject(steps, goal.slots)
