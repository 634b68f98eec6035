"""The chain watcher's pure core: logs to membership_changed, and reorg retractions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from domain import ids
from domain.entitlements import effective, fold
from domain.events import Event, WalletLinked
from domain.membership_log import (
    ZERO_ADDRESS,
    ContractLog,
    Follower,
    follow,
    forget_before,
    fork_point,
    rewind,
)

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ALICE = "0x19E7E376E7C213B7E7e7e46cc70A5dD086DAff2A"
BOB = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
EXPIRY = int((T0 + timedelta(days=30)).timestamp())


def log(event: str, block: int, index: int, **args: int | str) -> ContractLog:
    return ContractLog(
        event=event,
        args=args,
        block_number=block,
        block_hash=f"0x{block:064x}",
        block_time=T0 + timedelta(seconds=block),
        tx_hash=f"0x{block:062x}{index:02x}",
        log_index=index,
    )


LIFE = [
    log("Transfer", 10, 0, **{"from": ZERO_ADDRESS, "to": ALICE, "tokenId": 1}),
    log("MembershipMinted", 10, 1, tokenId=1, holder=ALICE, tier=2, expiresAt=EXPIRY),
    log("Transfer", 11, 0, **{"from": ALICE, "to": BOB, "tokenId": 1}),
    log(
        "MembershipRenewed",
        12,
        0,
        tokenId=1,
        holder=BOB,
        previousExpiresAt=EXPIRY,
        expiresAt=EXPIRY + 86400,
    ),
    log("Transfer", 13, 0, **{"from": BOB, "to": ZERO_ADDRESS, "tokenId": 1}),
    log("MembershipRevoked", 13, 1, tokenId=1, holder=BOB, tier=2),
]


def run(logs: list[ContractLog], state: Follower | None = None) -> tuple[Follower, list[Event]]:
    state = state or Follower(31337, CONTRACT)
    out: list[Event] = []
    for item in logs:
        state, event = follow(state, item)
        if event is not None:
            out.append(event)
    return state, out


def test_a_tokens_life_becomes_one_event_per_change_with_its_whole_state() -> None:
    _, events = run(LIFE)
    rows = [(e.change, e.holder, e.tier, int(e.expires_at.timestamp())) for e in events]  # type: ignore[attr-defined]
    assert rows == [
        ("minted", ALICE, "pro", EXPIRY),
        ("transferred", BOB, "pro", EXPIRY),
        ("renewed", BOB, "pro", EXPIRY + 86400),
        ("revoked", "", "pro", EXPIRY + 86400),
    ]
    assert {e.envelope.tenant_id for e in events} == {"*"}
    assert events[0].envelope.run_id == f"membership-31337-{CONTRACT}-1"


def test_following_the_same_logs_again_gives_the_same_ids() -> None:
    _, first = run(LIFE)
    _, again = run(LIFE)
    assert [e.envelope.event_id for e in first] == [e.envelope.event_id for e in again]
    assert len({e.envelope.event_id for e in first}) == len(first)


def test_logs_of_a_token_minted_before_the_follower_started_are_skipped() -> None:
    _, events = run(LIFE[2:])
    assert events == []


def test_fork_point_is_the_first_block_whose_hash_changed() -> None:
    seen = {10: "0xa", 11: "0xb", 12: "0xc"}
    assert fork_point(seen, seen) is None
    assert fork_point(seen, {10: "0xa", 11: "0xB", 12: "0xC"}) == 11
    assert fork_point(seen, {10: "0xa", 11: "0xb"}) == 12  # the chain got shorter


def test_rewind_retracts_newest_first_restoring_each_earlier_state() -> None:
    state, events = run(LIFE[:4])
    state, retractions = rewind(state, 11, T0 + timedelta(hours=1))
    assert [(r.change, r.retracts, r.holder, r.expires_at) for r in retractions] == [  # type: ignore[attr-defined]
        ("retracted", events[2].envelope.event_id, BOB, datetime.fromtimestamp(EXPIRY, UTC)),
        ("retracted", events[1].envelope.event_id, ALICE, datetime.fromtimestamp(EXPIRY, UTC)),
    ]
    assert state.tokens["1"].holder == ALICE
    assert [e.event for e in state.recent] == events[:1]


def test_a_retracted_mint_leaves_no_holder_and_the_tier_falls_back() -> None:
    state, events = run(LIFE[:2])
    _, retractions = rewind(state, 10, T0)
    linked = WalletLinked(
        ids.envelope(
            WalletLinked, run_id="wallets-acme", tenant_id="acme", actor="t", correlation_id="c"
        ),
        ALICE,
        31337,
        "d",
        "noncenonce",
        T0,
    )
    assert effective(fold("acme", [linked, *events]), T0).tier == "pro"
    assert effective(fold("acme", [linked, *events, *retractions]), T0).tier == "free"
    assert retractions[0].holder == ""  # type: ignore[attr-defined]


def test_forget_before_keeps_only_what_can_still_be_reorged() -> None:
    state, _ = run(LIFE)
    state = forget_before(state, 12)
    assert [e.event.block_number for e in state.recent] == [12, 13]
    _, retractions = rewind(state, 5, T0)
    assert len(retractions) == 2  # blocks 10 and 11 are final: never retracted
