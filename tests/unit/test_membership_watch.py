"""The chain watcher's stored state: ranges, window, reorg and reset, and its JSON."""

from __future__ import annotations

from datetime import timedelta

from domain.membership_log import ZERO_ADDRESS, follow
from domain.membership_watch import (
    advanced,
    from_json,
    next_range,
    reset,
    rewound,
    start,
    to_json,
)
from tests.unit.test_membership_log import ALICE, CONTRACT, LIFE, T0, log


def followed(until_block: int):  # type: ignore[no-untyped-def]
    watch = start(31337, CONTRACT, "0xgenesis", 10)
    follower, events = watch.follower, []
    for item in [x for x in LIFE if x.block_number <= until_block]:
        follower, event = follow(follower, item)
        if event is not None:
            events.append(event)
    hashes = {n: f"0x{n:064x}" for n in range(10, until_block + 1)}
    return advanced(watch, follower, until_block, hashes, window=3), events


def test_only_blocks_with_enough_confirmations_are_followed() -> None:
    watch = start(31337, CONTRACT, "0xgenesis", 10)
    assert next_range(watch, head=11, confirmations=2, max_blocks=100) is None
    assert next_range(watch, head=12, confirmations=2, max_blocks=100) == (10, 10)
    assert next_range(watch, head=500, confirmations=0, max_blocks=100) == (10, 109)


def test_the_window_keeps_the_last_blocks_and_their_events_only() -> None:
    watch, events = followed(12)
    assert watch.next_block == 13
    assert sorted(watch.hashes) == [10, 11, 12]
    watch2 = advanced(watch, watch.follower, 14, {13: "0xd", 14: "0xe"}, window=3)
    assert sorted(watch2.hashes) == [12, 13, 14]
    assert [e.event.block_number for e in watch2.follower.recent] == [12]
    assert [e.change for e in events] == ["minted", "transferred", "renewed"]


def test_a_reorg_retracts_and_follows_again_from_the_fork() -> None:
    watch, events = followed(12)
    back, retractions = rewound(watch, 11, T0)
    assert back.next_block == 11 and sorted(back.hashes) == [10]
    assert [r.retracts for r in retractions] == [e.envelope.event_id for e in events[:0:-1]]
    assert back.follower.tokens["1"].holder == ALICE


def test_a_new_genesis_retracts_every_token_and_starts_over() -> None:
    watch, _ = followed(12)
    again, events = reset(watch, "0xother", 1, T0)
    assert (again.genesis_hash, again.next_block, again.follower.tokens) == ("0xother", 1, {})
    assert [(e.token_id, e.change, e.holder) for e in events] == [("1", "retracted", "")]
    assert reset(watch, "0xother", 1, T0 + timedelta(hours=1))[1][0].envelope.event_id == (
        events[0].envelope.event_id
    )


def test_the_stored_json_gives_back_the_same_watch() -> None:
    watch, _ = followed(12)
    assert from_json(to_json(watch)) == watch
    minted = log("Transfer", 20, 0, **{"from": ZERO_ADDRESS, "to": ALICE, "tokenId": 2})
    assert follow(from_json(to_json(watch)).follower, minted)[1] is None
