"""A realistic stream of goals for the cache: Zipf over templates and over slot values.

Goal families are a head of common requests written by hand (with their paraphrases, a
few whose plans spell a value another way, a few about relative periods that a plan
resolves) and a long tail made of verb x object x qualifier. A family is drawn by Zipf
rank, then each slot's value by Zipf rank in its pool. The simulated model plans every
miss (its plan is the family's plan with the goal's values), and the cache learns it as
the projector would; a hit is checked against the plan the model would have made. The
index is an exact in-memory cosine top-k: this measures the matcher, not pgvector.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from domain.events import PlanStep
from domain.slots import GoalTemplate
from domain.templates import Learned, extract, learn, match
from projections.plan_cache.embedder import Embedder
from projections.plan_cache.stream_catalogue import HEAD, family_at, pools


@dataclass(frozen=True)
class StreamReport:
    goals: int
    hits: int
    wrong_plans: int
    model_calls: int
    entries: int
    head_hits: int
    head_goals: int
    exact_repeats: int
    template_repeats: int

    def summary(self) -> dict[str, float | int]:
        return {
            "goals": self.goals,
            "hit_rate": round(self.hits / self.goals, 4),
            "model_calls": self.model_calls,
            "model_calls_saved": self.hits,
            "wrong_plans_served": self.wrong_plans,
            "cache_entries": self.entries,
            "head_hit_rate": round(self.head_hits / max(self.head_goals, 1), 4),
            "head_share": round(self.head_goals / self.goals, 4),
            "exact_repeat_rate": round(self.exact_repeats / self.goals, 4),
            # Lookups whose template was seen before: the embedder's LRU spares them.
            "template_repeat_rate": round(self.template_repeats / self.goals, 4),
        }


def draw(
    n: int, *, families: int = 2000, s: float = 1.0, seed: int = 7
) -> list[tuple[int, dict[str, str], int]]:
    """``n`` goals: (family rank, slot values, phrasing), Zipf over families and values."""
    rng = random.Random(seed)
    values_of = pools()
    cumulative = {slot: _cumulative(size, s) for slot, (size, _) in values_of.items()}
    out = []
    for rank in rng.choices(range(families), cum_weights=_cumulative(families, s), k=n):
        family = family_at(rank)
        values = {}
        for slot in family.slots:
            size, value = values_of[slot]
            values[slot] = value(rng.choices(range(size), cum_weights=cumulative[slot])[0])
        out.append((rank, values, rng.randrange(len(family.phrasings))))
    return out


async def simulate(
    embedder: Embedder,
    goals: Sequence[tuple[int, dict[str, str], int]],
    *,
    candidates: int = 5,
    threshold: float = 0.7,
) -> StreamReport:
    """Run ``goals`` through learn/match as the cache would, the model planning misses."""
    family = [family_at(r) for r, _, _ in goals]
    texts = [f.goal(v, p) for f, (_, v, p) in zip(family, goals, strict=True)]
    templates = [extract(t) for t in texts]
    vectors = await embedder.embed(sorted({t.text for t in templates}))
    by_text = dict(zip(sorted({t.text for t in templates}), vectors, strict=True))
    index = _Index(len(goals), vectors.shape[1], candidates)
    hits = wrong = calls = head_hits = head_goals = 0
    # The bare baseline: a cache keyed by the goal's exact text would hit only repeats.
    repeats = len(texts) - len(set(texts))
    for (rank, values, _), fam, goal in zip(goals, family, templates, strict=True):
        head_goals += rank < len(HEAD)
        expected = fam.steps(values)
        served = index.serve(goal, by_text[goal.text], threshold)
        if served is not None:
            hits += 1
            head_hits += rank < len(HEAD)
            wrong += _plan(served) != _plan(expected)
            continue
        calls += 1  # the model plans it, and the cache learns from that plan
        learned = learn(goal, expected)
        if learned is not None:
            index.add(learned, by_text[goal.text])
    return StreamReport(
        len(goals),
        hits,
        wrong,
        calls,
        len(index.keys),
        head_hits,
        head_goals,
        repeats,
        len(templates) - len(by_text),
    )


class _Index:
    """Exact cosine top-k over learned entries; a re-learned entry replaces its row."""

    def __init__(self, capacity: int, dimensions: int, candidates: int) -> None:
        self.matrix = np.zeros((capacity, dimensions), dtype=np.float32)
        self.keys: list[tuple[str, str]] = []
        self.entries: dict[tuple[str, str], Learned] = {}
        self.candidates = candidates

    def add(self, learned: Learned, vector: np.ndarray[Any, Any]) -> None:
        key = (learned.template, learned.pattern)
        if key not in self.entries:
            self.matrix[len(self.keys)] = vector
            self.keys.append(key)
        self.entries[key] = learned

    def serve(
        self, goal: GoalTemplate, vector: np.ndarray[Any, Any], threshold: float
    ) -> tuple[PlanStep, ...] | None:
        if not self.keys:
            return None
        scores = self.matrix[: len(self.keys)] @ vector
        k = min(self.candidates, len(self.keys))
        for i in sorted(np.argpartition(-scores, k - 1)[:k], key=lambda i: -scores[i]):
            e = self.entries[self.keys[i]]
            verdict = match(e.pattern, e.slot_names, e.steps, goal, float(scores[i]), threshold)
            if verdict.steps is not None:
                return verdict.steps
        return None


def _plan(steps: Sequence[PlanStep]) -> list[tuple[str, Any]]:
    return [(s.tool, json.loads(s.arguments_json)) for s in steps]


def _cumulative(size: int, s: float) -> list[float]:
    return list(np.cumsum(1.0 / np.arange(1, size + 1) ** s))
