"""The semantic plan cache port, as the saga sees it (pure: no I/O here).

A lookup turns the goal into a template with typed slots (``Book flight to
{DESTINATION}`` with ``{"DESTINATION": "Paris"}``) and, when a similar template of the
same tenant (or one explicitly shared) has a live plan, returns that plan with this
goal's slot values injected. The template and slots are returned on a miss too, so
the ``plan_generated`` event that follows records them and the cache projection can
learn from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from domain.events import PlanStep


@dataclass(frozen=True)
class CachedPlan:
    """A reusable plan, already filled with the new goal's slot values."""

    steps: tuple[PlanStep, ...]
    similarity: float
    template: str
    source_plan_id: str
    model: str


@dataclass(frozen=True)
class CacheLookup:
    """The outcome of a lookup: a hit, or a miss that still carries the template."""

    hit: CachedPlan | None
    template: str | None = None
    slots: Mapping[str, str] = field(default_factory=dict)


class PlanCache(Protocol):
    """Finds a cached plan for a goal. Never returns a plan with unfilled slots."""

    async def lookup(self, tenant_id: str, goal: str) -> CacheLookup: ...


class DisabledPlanCache:
    """:class:`PlanCache` for deployments that switch the cache off: always a miss."""

    async def lookup(self, tenant_id: str, goal: str) -> CacheLookup:
        return CacheLookup(hit=None)
