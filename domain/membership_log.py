"""From the membership contract's logs to ``membership_changed`` events, reorgs included.

The pure core of the chain watcher (the process itself is not wired yet). It follows
decoded logs in chain order and keeps each token's state, so every event it produces
carries the token's whole state (holder, tier, expiry). Ids are deterministic (chain
id, transaction hash, log index): following the same logs again gives the same events,
so a restart that re-reads blocks duplicates nothing downstream.

A reorg is found by comparing the block hashes it saw with the chain's current ones
(:func:`fork_point`); :func:`rewind` then retracts, newest first, every event from the
blocks that are gone, each retraction restoring the token's state from before it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from domain import ids
from domain.events import MembershipChanged

TIERS_BY_VALUE = ("none", "starter", "pro", "enterprise")  # the contract's Tier enum
ZERO_ADDRESS = "0x" + "00" * 20
ACTOR = "chain-watcher"


@dataclass(frozen=True)
class ContractLog:
    """One decoded log of the membership contract."""

    event: str  # MembershipMinted, MembershipRenewed, MembershipRevoked or Transfer
    args: Mapping[str, int | str]
    block_number: int
    block_hash: str
    block_time: datetime
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class TokenState:
    """A token as the contract holds it after a log."""

    holder: str  # "" once revoked
    tier: str
    expires_at: datetime


@dataclass(frozen=True)
class Emitted:
    """An event this follower produced, with what it replaced (to retract it)."""

    event: MembershipChanged
    token_id: str
    previous: TokenState | None


@dataclass(frozen=True)
class Follower:
    """What the watcher keeps: token states, and its events within the reorg window."""

    chain_id: int
    contract: str
    tokens: Mapping[str, TokenState] = field(default_factory=dict)
    recent: tuple[Emitted, ...] = ()


def follow(state: Follower, log: ContractLog) -> tuple[Follower, MembershipChanged | None]:
    """The state after ``log``, and the event it produces (None for mint/burn Transfers,
    which the contract's own Minted/Revoked events describe)."""
    token_id = str(log.args["tokenId"])
    previous = state.tokens.get(token_id)
    after = _after(log, previous)
    if after is None:
        return state, None
    change = _CHANGES[log.event]
    event = _event(state, token_id, change, after, log)
    recent = (*state.recent, Emitted(event, token_id, previous))
    tokens = {**state.tokens, token_id: after}
    return replace(state, tokens=tokens, recent=recent), event


_CHANGES = {
    "MembershipMinted": "minted",
    "MembershipRenewed": "renewed",
    "MembershipRevoked": "revoked",
    "Transfer": "transferred",
}


def _after(log: ContractLog, previous: TokenState | None) -> TokenState | None:
    args = log.args
    if log.event == "MembershipMinted":
        expires = datetime.fromtimestamp(int(args["expiresAt"]), UTC)
        return TokenState(str(args["holder"]), TIERS_BY_VALUE[int(args["tier"])], expires)
    if previous is None:
        return None  # a token minted before the follower started: not ours to describe
    if log.event == "MembershipRenewed":
        return replace(previous, expires_at=datetime.fromtimestamp(int(args["expiresAt"]), UTC))
    if log.event == "MembershipRevoked":
        return replace(previous, holder="")
    if log.event == "Transfer" and ZERO_ADDRESS not in (str(args["from"]), str(args["to"])):
        return replace(previous, holder=str(args["to"]))
    return None


def _event(
    state: Follower, token_id: str, change: str, token: TokenState, log: ContractLog
) -> MembershipChanged:
    return MembershipChanged(
        envelope=ids.envelope(
            MembershipChanged,
            run_id=f"membership-{state.chain_id}-{state.contract}-{token_id}",
            tenant_id="*",
            actor=ACTOR,
            correlation_id=log.tx_hash,
            discriminator=(state.chain_id, log.tx_hash, log.log_index),
            occurred_at=log.block_time,
        ),
        chain_id=state.chain_id,
        contract=state.contract,
        token_id=token_id,
        change=change,
        holder=token.holder,
        tier=token.tier,
        expires_at=token.expires_at,
        block_number=log.block_number,
        block_hash=log.block_hash,
        tx_hash=log.tx_hash,
        log_index=log.log_index,
    )


def fork_point(seen: Mapping[int, str], canonical: Mapping[int, str]) -> int | None:
    """The first block whose hash the chain no longer has, None if every one agrees.

    ``seen``: block number -> hash as followed; ``canonical``: the chain's hashes now
    for the same numbers (a missing number means the chain is shorter: also gone).
    """
    gone = [n for n, h in seen.items() if canonical.get(n) != h]
    return min(gone) if gone else None


def rewind(
    state: Follower, fork_block: int, at: datetime
) -> tuple[Follower, list[MembershipChanged]]:
    """Retract every event from ``fork_block`` on, newest first; the state before them."""
    kept = tuple(e for e in state.recent if e.event.block_number < fork_block)
    undone = [e for e in state.recent if e.event.block_number >= fork_block]
    tokens = dict(state.tokens)
    retractions = []
    for emitted in reversed(undone):
        restored = emitted.previous
        if restored is None:
            tokens.pop(emitted.token_id, None)
        else:
            tokens[emitted.token_id] = restored
        retractions.append(_retraction(emitted, restored, at))
    return replace(state, tokens=tokens, recent=kept), retractions


def _retraction(emitted: Emitted, restored: TokenState | None, at: datetime) -> MembershipChanged:
    gone = emitted.event
    # A retracted mint leaves no holder: the token never existed on this chain.
    token = restored or TokenState("", gone.tier, gone.expires_at)
    return replace(
        gone,
        envelope=ids.envelope(
            MembershipChanged,
            run_id=gone.envelope.run_id,
            tenant_id="*",
            actor=ACTOR,
            correlation_id=gone.envelope.correlation_id,
            causation_id=gone.envelope.event_id,
            discriminator=("retract", gone.envelope.event_id),
            occurred_at=at,
        ),
        change="retracted",
        holder=token.holder,
        tier=token.tier,
        expires_at=token.expires_at,
        retracts=gone.envelope.event_id,
    )


def forget_before(state: Follower, block_number: int) -> Follower:
    """Drop events older than ``block_number``: final, they can no longer be retracted."""
    return replace(
        state, recent=tuple(e for e in state.recent if e.event.block_number >= block_number)
    )
