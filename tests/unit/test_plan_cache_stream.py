"""The simulated goal stream: Zipf draws, and the cache's learn/match over them."""

from __future__ import annotations

from collections import Counter

from projections.plan_cache.onnx_embedder import OnnxEmbedder
from projections.plan_cache.stream import draw, simulate
from projections.plan_cache.stream_catalogue import HEAD, family_at


def test_draws_follow_zipf_and_are_reproducible() -> None:
    goals = draw(3000, families=500, seed=1)
    assert goals == draw(3000, families=500, seed=1)
    ranks = Counter(rank for rank, _, _ in goals)
    assert ranks[0] > ranks[1] > ranks[9] > 0  # the head is drawn most
    assert len(ranks) > 200  # and the tail is long
    family = family_at(0)
    assert family is HEAD[0]
    assert all(set(values) == set(family_at(r).slots) for r, values, _ in goals)


async def test_the_stream_saves_model_calls_and_never_serves_a_wrong_plan() -> None:
    report = await simulate(OnnxEmbedder(), draw(600, families=300, seed=3))
    figures = report.summary()
    assert report.hits + report.model_calls == report.goals == 600
    assert report.wrong_plans == 0
    # Slot values vary, so the cache must do better than a cache keyed by exact text.
    assert figures["hit_rate"] > figures["exact_repeat_rate"] + 0.2
    assert 0 < report.entries <= report.model_calls
