"""The labelled goal pairs (tests/fixtures/goal_pairs.jsonl) against the real model.

Near-duplicates must hit and different intents must miss. A wrong plan is worse than a
model call, so precision is held at 1.0 on the set; recall may lose a paraphrase.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from domain.templates import extract, parametrize
from projections.plan_cache.embedder import SentenceTransformerEmbedder
from projections.plan_cache.evaluation import GoalPair, Report, evaluate, load_pairs

PAIRS = Path(__file__).parents[1] / "fixtures" / "goal_pairs.jsonl"
THRESHOLD = 0.85


@pytest.fixture(scope="module")
def pairs() -> list[GoalPair]:
    return load_pairs(PAIRS)


@pytest.fixture(scope="module")
async def report(pairs: list[GoalPair]) -> Report:
    return await evaluate(pairs, SentenceTransformerEmbedder(), THRESHOLD)


def test_the_labelled_set_is_large_and_balanced(pairs: list[GoalPair]) -> None:
    assert len(pairs) >= 50
    assert sum(p.hit for p in pairs) >= 25
    assert sum(not p.hit for p in pairs) >= 25
    for pair in pairs:  # every stored plan refers to all of its goal's slots
        assert parametrize(pair.plan_a, extract(pair.a).slots) is not None, pair.a


def test_no_wrong_plan_is_served_and_near_duplicates_hit(report: Report) -> None:
    false_hits = [o.pair.b for o in report.wrong() if o.predicted_hit]
    assert false_hits == []
    assert report.precision == 1.0
    assert report.recall >= 0.9, [o.pair.b for o in report.wrong()]


def test_every_slot_only_pair_hits_with_the_new_values_injected(report: Report) -> None:
    for outcome in report.outcomes:
        if outcome.pair.kind not in ("slot", "repeat"):
            continue
        assert outcome.served is not None, outcome.pair.b
        served = " ".join(json.dumps(json.loads(s.arguments_json)) for s in outcome.served)
        old, new = extract(outcome.pair.a).slots, extract(outcome.pair.b).slots
        for name, value in new.items():
            assert _mentions(served, _core(name, value)), (name, value, served)
            if old[name] != value:
                assert not _mentions(served, _core(name, old[name])), (name, served)
        assert "{{" not in served


def _core(name: str, value: str) -> str:
    """How a value appears in a plan's JSON: money and numbers as JSON numbers."""
    if name.startswith("MONEY"):
        return json.dumps(float(re.sub(r"[^0-9.]", "", value))).removesuffix(".0")
    return value


def _mentions(text: str, value: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(value)}(?![\w]|\.\d)", text) is not None


def test_similarity_alone_would_serve_wrong_plans(report: Report) -> None:
    # Why the slot-type and deciding-word checks exist: these score above the threshold.
    risky = {o.pair.b for o in report.outcomes if not o.pair.hit and o.similarity >= THRESHOLD}
    assert 'Sell 10 shares of "Acme Corp"' in risky
    assert "Transfer 250 EUR to account 1234" in risky
    assert all(not o.predicted_hit for o in report.outcomes if o.pair.b in risky)
