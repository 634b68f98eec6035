"""How long a stream processor lets the broker gather a batch (``consumer_gather_ms``)."""

from __future__ import annotations

from streams.follower import _gathering


def test_no_gather_keeps_aiokafkas_defaults() -> None:
    assert _gathering(0) == {}


def test_a_gather_asks_the_broker_to_wait_for_a_fuller_fetch() -> None:
    assert _gathering(50) == {"fetch_min_bytes": 64 << 10, "fetch_max_wait_ms": 50}
