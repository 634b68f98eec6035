"""Which ``plan_generated`` events become cache entries, and what they store. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.events import PlanGenerated, PlanStep
from domain.slots import GoalTemplate
from domain.storable import storable
from domain.templates import learn

# Plans that saved no model call when they were made are not worth serving again.
_NOT_LEARNED_FROM = ("rule-based", "rules", "cache")


@dataclass(frozen=True)
class StoredPlan:
    """A cache entry before its embedding: the plan with slot placeholders.

    ``template`` is embedded and names the entry for invalidations and shares;
    ``pattern`` is what a new goal must agree with (slots the plan does not take are
    written back as their values).
    """

    tenant_id: str
    template: str
    pattern: str
    slot_names: tuple[str, ...]
    steps: tuple[PlanStep, ...]
    model: str
    source_plan_id: str
    source_event_id: str
    planned_at: datetime
    expires_at: datetime


def stored_plan(event: PlanGenerated, ttl: timedelta) -> StoredPlan | None:
    """The entry ``event`` teaches the cache, or None when it teaches nothing.

    Nothing is learned from plans served by the cache (a hit must not extend its own
    life), from rule-based plans, from events without a template, or from plans whose
    values cannot be followed (:func:`domain.templates.learn`).
    """
    if event.from_cache or event.template is None or not event.steps:
        return None
    if event.planner in _NOT_LEARNED_FROM or event.planner.startswith("cache:"):
        return None
    slots = dict(event.template_slots)
    if not _consistent(event.template, slots):
        return None
    learned = learn(GoalTemplate(event.template, slots), event.steps)
    if learned is None:
        return None
    at = event.envelope.occurred_at
    # A model's plan may hold text Postgres cannot store (NUL): escaped, as everywhere.
    return storable(
        StoredPlan(
            tenant_id=event.envelope.tenant_id,
            template=event.template,
            pattern=learned.pattern,
            slot_names=learned.slot_names,
            steps=learned.steps,
            model=event.planner,
            source_plan_id=event.plan_id,
            source_event_id=event.envelope.event_id,
            planned_at=at,
            expires_at=at + ttl,
        )
    )


def _consistent(template: str, slots: dict[str, str]) -> bool:
    # The template must name exactly the recorded slots, or injection could not fill it.
    return sorted(_SLOT.findall(template)) == sorted(slots)


_SLOT = re.compile(r"(?<!\{)\{([A-Z][A-Z0-9_]*)\}(?!\})")
