"""What the chain watcher keeps between polls and across restarts, and how it moves. Pure.

A :class:`Watch` is the follower of :mod:`domain.membership_log` plus where it is on
the chain: the chain's genesis hash (a new one means the chain was reset: a restarted
dev node), the first block not yet followed, and the hashes of the followed blocks in
the reorg window. The watcher stores it (as JSON) after each append, so a restart
resumes from the stored block with the token states it had, and its deterministic event
ids make a re-read block produce the very same events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any

from domain import ids
from domain.events import Envelope, MembershipChanged
from domain.membership_log import ACTOR, Emitted, Follower, TokenState, forget_before, rewind


@dataclass(frozen=True)
class Watch:
    """The watcher's stored state for one contract on one chain."""

    follower: Follower
    genesis_hash: str
    next_block: int  # the first block not yet followed
    hashes: Mapping[int, str] = field(default_factory=dict)  # followed blocks in the window


def start(chain_id: int, contract: str, genesis_hash: str, from_block: int) -> Watch:
    """A watcher that has followed nothing yet, starting at ``from_block``."""
    return Watch(Follower(chain_id, contract), genesis_hash, from_block)


def next_range(
    watch: Watch, head: int, confirmations: int, max_blocks: int
) -> tuple[int, int] | None:
    """The blocks to follow now: those with ``confirmations`` blocks on top, at most
    ``max_blocks`` of them; None while there is none."""
    safe = head - confirmations
    if safe < watch.next_block:
        return None
    return watch.next_block, min(safe, watch.next_block + max_blocks - 1)


def advanced(
    watch: Watch, follower: Follower, to_block: int, hashes: Mapping[int, str], window: int
) -> Watch:
    """``watch`` after following up to ``to_block``: only the last ``window`` blocks'
    hashes and events are kept; older ones are final (no reorg that deep is undone)."""
    oldest = to_block - window + 1
    kept = {n: h for n, h in {**watch.hashes, **hashes}.items() if n >= oldest}
    return replace(
        watch, follower=forget_before(follower, oldest), next_block=to_block + 1, hashes=kept
    )


def rewound(watch: Watch, fork: int, at: datetime) -> tuple[Watch, list[MembershipChanged]]:
    """Retract what was followed from block ``fork`` on, and follow again from there."""
    follower, retractions = rewind(watch.follower, fork, at)
    hashes = {n: h for n, h in watch.hashes.items() if n < fork}
    return replace(watch, follower=follower, next_block=fork, hashes=hashes), retractions


def reset(
    watch: Watch, genesis_hash: str, from_block: int, at: datetime
) -> tuple[Watch, list[MembershipChanged]]:
    """The chain followed is gone (another genesis): every token it knew is retracted,
    and following starts over on the new chain."""
    gone = watch.follower
    events = [
        _gone(gone, watch.genesis_hash, token_id, token, at)
        for token_id, token in sorted(gone.tokens.items())
        if token.holder
    ]
    return start(gone.chain_id, gone.contract, genesis_hash, from_block), events


def _gone(
    state: Follower, genesis: str, token_id: str, token: TokenState, at: datetime
) -> MembershipChanged:
    return MembershipChanged(
        envelope=ids.envelope(
            MembershipChanged,
            run_id=f"membership-{state.chain_id}-{state.contract}-{token_id}",
            tenant_id="*",
            actor=ACTOR,
            correlation_id=f"chain-reset-{genesis}",
            discriminator=("chain-reset", genesis, token_id),
            occurred_at=at,
        ),
        chain_id=state.chain_id,
        contract=state.contract,
        token_id=token_id,
        change="retracted",
        holder="",
        tier=token.tier,
        expires_at=token.expires_at,
        block_number=0,
        block_hash=genesis,  # the genesis of the chain that is gone
        tx_hash="",
        log_index=0,
    )


def to_json(watch: Watch) -> dict[str, Any]:
    """``watch`` as JSON-ready data (what the watcher stores)."""
    f = watch.follower
    return {
        "chain_id": f.chain_id,
        "contract": f.contract,
        "genesis_hash": watch.genesis_hash,
        "next_block": watch.next_block,
        "hashes": {str(n): h for n, h in sorted(watch.hashes.items())},
        "tokens": {t: _token_json(s) for t, s in sorted(f.tokens.items())},
        "recent": [
            {
                "event": _event_json(e.event),
                "token_id": e.token_id,
                "previous": None if e.previous is None else _token_json(e.previous),
            }
            for e in f.recent
        ],
    }


def from_json(data: Mapping[str, Any]) -> Watch:
    """The :class:`Watch` that :func:`to_json` wrote."""
    recent = tuple(
        Emitted(
            _event_from(r["event"]),
            str(r["token_id"]),
            None if r["previous"] is None else _token_from(r["previous"]),
        )
        for r in data["recent"]
    )
    follower = Follower(
        int(data["chain_id"]),
        str(data["contract"]),
        {str(t): _token_from(s) for t, s in data["tokens"].items()},
        recent,
    )
    hashes = {int(n): str(h) for n, h in data["hashes"].items()}
    return Watch(follower, str(data["genesis_hash"]), int(data["next_block"]), hashes)


def _token_json(token: TokenState) -> dict[str, str]:
    return {"holder": token.holder, "tier": token.tier, "expires_at": token.expires_at.isoformat()}


def _token_from(data: Mapping[str, str]) -> TokenState:
    return TokenState(data["holder"], data["tier"], _time(data["expires_at"]))


def _event_json(event: MembershipChanged) -> dict[str, Any]:
    env = event.envelope
    return {
        "envelope": {
            **{k: getattr(env, k) for k in _names(Envelope) if k != "occurred_at"},
            "occurred_at": env.occurred_at.isoformat(),
        },
        **{
            k: getattr(event, k)
            for k in _names(MembershipChanged)
            if k not in ("envelope", "expires_at")
        },
        "expires_at": event.expires_at.isoformat(),
    }


def _event_from(data: Mapping[str, Any]) -> MembershipChanged:
    env = dict(data["envelope"])
    env["occurred_at"] = _time(env["occurred_at"])
    fields = {k: v for k, v in data.items() if k != "envelope"}
    fields["expires_at"] = _time(fields["expires_at"])
    return MembershipChanged(envelope=Envelope(**env), **fields)


def _names(cls: Any) -> list[str]:
    return [f.name for f in fields(cls)]


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)
