"""Hit rate and precision of the cache's matching on a labelled set of goal pairs.

Each pair is a planned goal ``a`` (with the plan the cache stored for it) and a later
goal ``b``, labelled whether ``b`` may reuse ``a``'s plan. Used by the tests, which hold
the matcher to the set, and by the benchmark, which reports the numbers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from domain.events import PlanStep
from domain.templates import extract, parametrize, reuse
from projections.plan_cache.embedder import Embedder


@dataclass(frozen=True)
class GoalPair:
    a: str
    b: str
    hit: bool
    kind: str
    plan_a: tuple[PlanStep, ...]


@dataclass(frozen=True)
class Outcome:
    pair: GoalPair
    similarity: float
    served: tuple[PlanStep, ...] | None

    @property
    def predicted_hit(self) -> bool:
        return self.served is not None


@dataclass(frozen=True)
class Report:
    outcomes: tuple[Outcome, ...]

    def _count(self, predicted: bool, actual: bool) -> int:
        return sum(o.predicted_hit is predicted and o.pair.hit is actual for o in self.outcomes)

    @property
    def precision(self) -> float:
        """Of the plans served, the share that were right to serve."""
        served = self._count(True, True) + self._count(True, False)
        return self._count(True, True) / served if served else 1.0

    @property
    def recall(self) -> float:
        """Of the pairs that should hit, the share that did (the hit rate on them)."""
        should = self._count(True, True) + self._count(False, True)
        return self._count(True, True) / should if should else 1.0

    @property
    def hit_rate(self) -> float:
        """Share of all lookups served from the cache."""
        return sum(o.predicted_hit for o in self.outcomes) / max(len(self.outcomes), 1)

    def wrong(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.predicted_hit is not o.pair.hit]


def load_pairs(path: Path) -> list[GoalPair]:
    """Read a ``goal_pairs.jsonl`` file."""
    pairs = []
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            steps = tuple(
                PlanStep(f"s{i + 1}", s["tool"], json.dumps(s["arguments"]))
                for i, s in enumerate(row["plan_a"])
            )
            pairs.append(GoalPair(row["a"], row["b"], bool(row["hit"]), row["kind"], steps))
    return pairs


async def evaluate(pairs: Sequence[GoalPair], embedder: Embedder, threshold: float) -> Report:
    """Match every ``b`` against its ``a`` as the cache would (exact cosine, no index)."""
    templates = [(extract(p.a), extract(p.b)) for p in pairs]
    vectors = await embedder.embed([t.text for ab in templates for t in ab])
    outcomes = []
    for i, (pair, (ta, tb)) in enumerate(zip(pairs, templates, strict=True)):
        similarity = float(vectors[2 * i] @ vectors[2 * i + 1])
        stored = parametrize(pair.plan_a, ta.slots)
        served = None
        if stored is not None:
            served = reuse(ta.text, ta.slots, stored, tb, similarity, threshold)
        outcomes.append(Outcome(pair, similarity, served))
    return Report(tuple(outcomes))
