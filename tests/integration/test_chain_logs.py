"""The watcher's core on the stack's Hardhat node: real logs, and a real reorg.

The reorg is made with Hardhat's ``evm_snapshot`` / ``evm_revert``: a block is mined,
followed, reverted and replaced by another at the same height, as a reorg would.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from web3 import Web3

from contracts.deployment import connect
from contracts.logs import block_hashes, read_logs
from contracts.membership import MembershipContract
from domain.events import MembershipChanged
from domain.membership_log import Follower, follow, fork_point, rewind
from infra import chain_service
from infra.stack import StackConfig

DAY = 86400


@pytest.fixture
def w3(stack: StackConfig) -> Iterator[Web3]:
    yield connect(chain_service.rpc_url(stack))


def now(w3: Web3) -> int:
    return int(w3.eth.get_block("latest")["timestamp"])


def followed(
    w3: Web3, state: Follower, membership: MembershipContract, start: int
) -> tuple[Follower, list[MembershipChanged]]:
    out = []
    for log in read_logs(membership, start, w3.eth.block_number):
        state, event = follow(state, log)
        if event is not None:
            out.append(event)
    return state, out


def test_a_tokens_life_on_chain_becomes_membership_changed_events(w3: Web3) -> None:
    owner, alice, bob = w3.eth.accounts[:3]
    membership, receipt = MembershipContract.deploy(w3, owner)
    start = receipt["blockNumber"]
    token = membership.mint(alice, "pro", now(w3) + DAY, owner)
    membership.transfer(token, bob, alice)
    membership.renew(token, now(w3) + 30 * DAY, owner)
    membership.revoke(token, owner)
    _, events = followed(w3, Follower(w3.eth.chain_id, membership.address), membership, start)
    assert [(e.change, e.holder, e.tier) for e in events] == [
        ("minted", alice, "pro"),
        ("transferred", bob, "pro"),
        ("renewed", bob, "pro"),
        ("revoked", "", "pro"),
    ]
    _, again = followed(w3, Follower(w3.eth.chain_id, membership.address), membership, start)
    assert [e.envelope.event_id for e in again] == [e.envelope.event_id for e in events]


def test_a_reorged_mint_is_found_and_retracted(w3: Web3) -> None:
    owner, alice, bob = w3.eth.accounts[:3]
    membership, receipt = MembershipContract.deploy(w3, owner)
    start = receipt["blockNumber"] + 1
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    membership.mint(alice, "enterprise", now(w3) + DAY, owner)
    state, minted = followed(w3, Follower(w3.eth.chain_id, membership.address), membership, start)
    seen = block_hashes(w3, range(start, w3.eth.block_number + 1))
    assert [e.holder for e in minted] == [alice]

    assert w3.provider.make_request("evm_revert", [snapshot])["result"] is True  # type: ignore[arg-type]
    membership.mint(bob, "starter", now(w3) + DAY, owner)  # another block at that height

    fork = fork_point(seen, block_hashes(w3, seen))
    assert fork == minted[0].block_number
    state, retractions = rewind(state, fork, minted[0].expires_at)
    assert [(r.change, r.retracts, r.holder) for r in retractions] == [
        ("retracted", minted[0].envelope.event_id, "")
    ]
    state, replaced = followed(w3, state, membership, fork)
    assert [(e.change, e.holder, e.tier) for e in replaced] == [("minted", bob, "starter")]
    assert replaced[0].envelope.event_id != minted[0].envelope.event_id
