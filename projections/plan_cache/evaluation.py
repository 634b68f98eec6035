"""Precision and recall of the cache's matching on labelled goal pairs.

Each pair is a planned goal ``a`` (with the plan the model made for it) and a later goal
``b``, labelled whether ``b`` may reuse ``a``'s plan and, for those that may, the values
to swap: the plan ``b`` must get is known exactly. A served plan counts as right only
when it is that plan, so a hit that fills a plan wrongly is a wrong plan, like a hit on
a pair that should miss. Used by the tests, which hold the matcher to the sets, and by
the benchmark, which reports the numbers per split and kind.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from domain.events import PlanStep
from domain.templates import extract, learn, match
from projections.plan_cache.embedder import Embedder

FIXTURES = Path(__file__).parents[2] / "tests" / "fixtures"
SPLITS = {"dev": FIXTURES / "goal_pairs_dev.jsonl", "test": FIXTURES / "goal_pairs_test.jsonl"}


@dataclass(frozen=True)
class GoalPair:
    a: str
    b: str
    hit: bool
    kind: str
    plan_a: tuple[PlanStep, ...]
    domain: str = ""
    split: str = ""
    swap: tuple[tuple[Any, Any], ...] = ()

    def expected_plan(self) -> list[tuple[str, Any]] | None:
        """The plan ``b`` must get (``plan_a`` with the swaps), None for a miss."""
        if not self.hit:
            return None
        return [(s.tool, _swapped(json.loads(s.arguments_json), self.swap)) for s in self.plan_a]


@dataclass(frozen=True)
class Outcome:
    pair: GoalPair
    similarity: float
    served: tuple[PlanStep, ...] | None
    reason: str | None

    @property
    def predicted_hit(self) -> bool:
        return self.served is not None

    @property
    def right(self) -> bool:
        """A served plan that is exactly the expected one."""
        if self.served is None:
            return False
        got = [(s.tool, json.loads(s.arguments_json)) for s in self.served]
        return got == self.pair.expected_plan()


@dataclass(frozen=True)
class Report:
    outcomes: tuple[Outcome, ...]

    @property
    def served(self) -> int:
        return sum(o.predicted_hit for o in self.outcomes)

    @property
    def precision(self) -> float:
        """Of the plans served, the share that were exactly the right plan."""
        return sum(o.right for o in self.outcomes) / self.served if self.served else 1.0

    @property
    def recall(self) -> float:
        """Of the pairs that should hit, the share served the right plan."""
        should = sum(o.pair.hit for o in self.outcomes)
        return sum(o.right for o in self.outcomes) / should if should else 1.0

    @property
    def hit_rate(self) -> float:
        """Share of all lookups served from the cache."""
        return self.served / max(len(self.outcomes), 1)

    def wrong_plans(self) -> list[Outcome]:
        """Plans served that were not the right plan (what precision counts against)."""
        return [o for o in self.outcomes if o.predicted_hit and not o.right]

    def missed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.pair.hit and not o.right]

    def where(self, **fields: str) -> Report:
        """The outcomes whose pair has these field values (``kind="slot"``)."""
        keep = [o for o in self.outcomes if all(getattr(o.pair, k) == v for k, v in fields.items())]
        return Report(tuple(keep))

    def summary(self) -> dict[str, float | int]:
        return {
            "pairs": len(self.outcomes),
            "should_hit": sum(o.pair.hit for o in self.outcomes),
            "served": self.served,
            "wrong_plans": len(self.wrong_plans()),
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
        }

    def by_kind(self) -> dict[str, dict[str, float | int]]:
        kinds = sorted({o.pair.kind for o in self.outcomes})
        return {k: self.where(kind=k).summary() for k in kinds}


def load_pairs(path: Path) -> list[GoalPair]:
    """Read a goal pairs JSONL file (its first line is a header record)."""
    pairs = []
    for line in path.read_text().splitlines():
        row: dict[str, Any] = json.loads(line) if line.strip() else {"_header": True}
        if row.get("_header"):
            continue
        steps = tuple(
            PlanStep(f"s{i + 1}", s["tool"], json.dumps(s["arguments"], ensure_ascii=False))
            for i, s in enumerate(row["plan_a"])
        )
        swap = tuple((old, new) for old, new in row.get("swap", []))
        pairs.append(
            GoalPair(
                row["a"], row["b"], bool(row["hit"]), row["kind"], steps,
                row.get("domain", ""), row.get("split", ""), swap,
            )
        )  # fmt: skip
    return pairs


async def evaluate(pairs: Sequence[GoalPair], embedder: Embedder, threshold: float) -> Report:
    """Learn every ``a`` as the projector would and look ``b`` up against it (no index)."""
    learned = [learn(extract(p.a), p.plan_a) for p in pairs]
    goals = [extract(p.b) for p in pairs]
    texts = [
        (entry.template if entry else p.a, g.text)
        for p, entry, g in zip(pairs, learned, goals, strict=True)
    ]
    vectors = await embedder.embed([t for ab in texts for t in ab])
    outcomes = []
    for i, (pair, entry, goal) in enumerate(zip(pairs, learned, goals, strict=True)):
        similarity = float(vectors[2 * i] @ vectors[2 * i + 1])
        if entry is None:
            outcomes.append(Outcome(pair, similarity, None, "not_learned"))
            continue
        verdict = match(entry.pattern, entry.slot_names, entry.steps, goal, similarity, threshold)
        outcomes.append(Outcome(pair, similarity, verdict.steps, verdict.reason))
    return Report(tuple(outcomes))


def _swapped(node: Any, swap: Iterable[tuple[Any, Any]]) -> Any:
    swap = tuple(swap)
    if isinstance(node, dict):
        return {k: _swapped(v, swap) for k, v in node.items()}
    if isinstance(node, list):
        return [_swapped(v, swap) for v in node]
    if isinstance(node, bool):
        return node
    if isinstance(node, int | float):
        return next((new for old, new in swap if _is_number(old) and old == node), node)
    if isinstance(node, str):
        for old, new in sorted(swap, key=lambda s: -len(str(s[0]))):
            if isinstance(old, str):
                node = node.replace(old, str(new))
            else:
                node = re.sub(rf"(?<![\w.]){re.escape(str(old))}(?![\w]|\.\d)", str(new), node)
    return node


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
