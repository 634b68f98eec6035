"""A read is "caught up" only against the log's end as Kafka gave it after the read began."""

from __future__ import annotations

import time
from typing import Any

import pytest

from projections import freshness
from projections.freshness import FreshnessProbe


@pytest.fixture
def log_end(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The log's end offset, and how many times it was asked."""
    state: dict[str, Any] = {"end": 5, "asked": 0}

    async def end_offsets(bootstrap: str, topics: list[str]) -> dict[tuple[str, int], int]:
        state["asked"] += 1
        return {("runs", 0): state["end"]}

    monkeypatch.setattr(freshness, "end_offsets", end_offsets)
    return state


def at(offset: int) -> list[dict[str, Any]]:
    return [{"topic": "runs", "partition": 0, "next_offset": offset}]


async def test_a_read_that_began_after_the_cached_ends_asks_kafka_again(
    log_end: dict[str, Any],
) -> None:
    probe = FreshnessProbe("x:1", ["runs"], ttl_s=60)
    assert (await probe.describe(at(5)))["caught_up"] is True
    log_end["end"] = 6  # an event the client saw on its stream, not yet projected
    began = time.monotonic()
    assert (await probe.describe(at(5), since=began))["caught_up"] is False
    assert log_end["asked"] == 2
    # Without ``since`` the cache serves within its TTL (cheap lag for polling reads).
    assert (await probe.describe(at(6)))["caught_up"] is True and log_end["asked"] == 2


async def test_reads_that_began_before_a_fetch_share_it(log_end: dict[str, Any]) -> None:
    probe = FreshnessProbe("x:1", ["runs"], ttl_s=0)
    began = time.monotonic()
    await probe.describe(at(5), since=began)
    await probe.describe(at(5), since=began)
    assert log_end["asked"] == 1
