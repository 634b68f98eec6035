"""The chain watcher: the membership contract's logs into ``membership_changed`` events.

Each poll (:meth:`ChainWatcher.step`), in order:

1. a new genesis means the chain followed is gone (a restarted dev node): every token
   it knew is retracted and following starts over;
2. a reorg is found by the stored hash of the last followed block; the block hashes of
   the window then say where the chains part (``fork_point``), and every event from
   there on is retracted, newest first (``rewind``);
3. the blocks with ``confirmations`` blocks on top are read, folded into events
   (``follow``), appended, and the new state is stored.

The state (:class:`domain.membership_watch.Watch`) is stored in Postgres after each
append, so a restart resumes at the stored block. Event ids are deterministic (chain id,
transaction hash, log index); ids already appended but not stored yet (a crash between
the two) are passed in as ``appended`` and skipped, so nothing is appended twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import asyncpg

from domain.events import MembershipChanged
from domain.membership_log import ContractLog, follow, fork_point
from domain.membership_watch import (
    Watch,
    advanced,
    from_json,
    next_range,
    reset,
    rewound,
    start,
    to_json,
)
from omnihub import metrics
from streams.producer import EventAppender

log = logging.getLogger(__name__)

AppendedSince = Callable[[datetime], Awaitable[set[str]]]


class Chain(Protocol):
    """The chain as the watcher reads it (blocking calls, run in a thread)."""

    chain_id: int

    def head(self) -> int: ...

    def genesis(self) -> str: ...

    def logs(self, from_block: int, to_block: int) -> list[ContractLog]: ...

    def hashes(self, numbers: Iterable[int]) -> dict[int, str]: ...


class WatchStore(Protocol):
    """Where the watcher keeps its :class:`Watch` between polls and restarts."""

    async def load(self, watcher: str) -> tuple[Watch, datetime] | None:
        """The stored state and when it was stored, or None."""
        ...

    async def save(self, watcher: str, watch: Watch) -> None:
        """Store ``watch`` (replacing the previous one)."""
        ...


class PgWatchStore:
    """:class:`WatchStore` in the ``chain_watcher_state`` table (migration 0260)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def load(self, watcher: str) -> tuple[Watch, datetime] | None:
        row = await self._pool.fetchrow(
            "SELECT state, updated_at FROM chain_watcher_state WHERE watcher = $1", watcher
        )
        if row is None:
            return None
        return from_json(json.loads(row["state"])), row["updated_at"]

    async def save(self, watcher: str, watch: Watch) -> None:
        await self._pool.execute(
            "INSERT INTO chain_watcher_state (watcher, next_block, state, updated_at)"
            " VALUES ($1, $2, $3::jsonb, now()) ON CONFLICT (watcher) DO UPDATE SET"
            " next_block = EXCLUDED.next_block, state = EXCLUDED.state, updated_at = now()",
            watcher,
            watch.next_block,
            json.dumps(to_json(watch)),
        )


@dataclass(frozen=True)
class WatchConfig:
    """How the watcher follows: confirmations, reorg window, blocks per query."""

    from_block: int
    confirmations: int = 2
    window: int = 64
    max_blocks: int = 1000


def watcher_name(chain_id: int, contract: str) -> str:
    """The stored state's key: one watcher per contract on a chain."""
    return f"{chain_id}:{contract}"


class ChainWatcher:
    """Follows one membership contract; :meth:`step` is one poll."""

    def __init__(
        self,
        chain: Chain,
        contract: str,
        appender: EventAppender,
        store: WatchStore,
        config: WatchConfig,
        clock: type[datetime] = datetime,
    ) -> None:
        self._chain = chain
        self._contract = contract
        self._appender = appender
        self._store = store
        self._config = config
        self._clock = clock
        self._name = watcher_name(chain.chain_id, contract)
        self._watch: Watch | None = None
        self._appended: set[str] = set()
        self.appended_count = 0

    async def resume(self, appended_since: AppendedSince | None = None) -> Watch:
        """Load the stored state (or start at ``from_block``). ``appended_since(t)`` says
        which ids reached the log since ``t``: the stored state may not know of them yet."""
        stored = await self._store.load(self._name)
        if stored is None:
            genesis = await asyncio.to_thread(self._chain.genesis)
            watch = start(self._chain.chain_id, self._contract, genesis, self._config.from_block)
            since = datetime.fromtimestamp(0, UTC)  # never stored: it may have appended anyway
        else:
            # Back a minute: the broker's timestamps and Postgres' clock may differ.
            watch, since = stored[0], stored[1] - timedelta(minutes=1)
        if appended_since is not None:
            self._appended = await appended_since(since)
        self._watch = watch
        return watch

    async def step(self) -> int:
        """One poll: reset, reorg, then follow; how many events it appended."""
        watch = self._watch or await self.resume()
        appended = 0
        for move in (self._reset, self._reorg, self._follow):
            watch, events = await move(watch)
            if events or watch is not self._watch:
                appended += await self._append(events)
                await self._store.save(self._name, watch)
                self._watch = watch
        return appended

    async def run(self, stop: asyncio.Event, poll_s: float) -> None:
        """Poll until ``stop`` is set; a chain or log failure is logged and retried."""
        while not stop.is_set():
            try:
                await self.step()
            except Exception:  # the node or Kafka away: try again next poll
                log.exception("chain watcher poll failed; retrying")
            try:
                await asyncio.wait_for(stop.wait(), timeout=poll_s)
            except TimeoutError:
                continue

    async def _reset(self, watch: Watch) -> tuple[Watch, list[MembershipChanged]]:
        genesis = await asyncio.to_thread(self._chain.genesis)
        if genesis == watch.genesis_hash:
            return watch, []
        log.warning("the chain was reset (genesis %s, was %s)", genesis, watch.genesis_hash)
        return reset(watch, genesis, self._config.from_block, self._now())

    async def _reorg(self, watch: Watch) -> tuple[Watch, list[MembershipChanged]]:
        if not watch.hashes:
            return watch, []
        tip = max(watch.hashes)
        # The tip's hash covers every block below it: check it alone, the window if needed.
        if (await asyncio.to_thread(self._chain.hashes, [tip])).get(tip) == watch.hashes[tip]:
            return watch, []
        canonical = await asyncio.to_thread(self._chain.hashes, list(watch.hashes))
        fork = fork_point(watch.hashes, canonical)
        if fork is None:
            return watch, []
        log.warning("reorg from block %d: retracting what was followed since", fork)
        return rewound(watch, fork, self._now())

    async def _follow(self, watch: Watch) -> tuple[Watch, list[MembershipChanged]]:
        head = await asyncio.to_thread(self._chain.head)
        cfg = self._config
        metrics.CHAIN_BLOCKS_BEHIND.set(max(0, head - watch.next_block + 1))
        span = next_range(watch, head, cfg.confirmations, cfg.max_blocks)
        if span is None:
            return watch, []
        first, last = span
        logs = await asyncio.to_thread(self._chain.logs, first, last)
        numbers = range(max(first, last - cfg.window + 1), last + 1)
        hashes = await asyncio.to_thread(self._chain.hashes, numbers)
        if len(hashes) < len(numbers) or any(
            hashes.get(x.block_number, x.block_hash) != x.block_hash for x in logs
        ):
            return watch, []  # the chain moved under the reads: read again next poll
        follower, events = watch.follower, []
        for item in logs:
            follower, event = follow(follower, item)
            if event is not None:
                events.append(event)
        return advanced(watch, follower, last, hashes, cfg.window), events

    async def _append(self, events: Sequence[MembershipChanged]) -> int:
        fresh = [e for e in events if e.envelope.event_id not in self._appended]
        if fresh:
            await self._appender.append_many(fresh)  # LogUnavailable: nothing stored
            self.appended_count += len(fresh)
            for event in fresh:
                metrics.CHAIN_MEMBERSHIP_CHANGES.labels(event.change).inc()
            # Remembered, so a store that fails next cannot make the retry append them again
            # (membership changes are few: the set stays small).
            self._appended.update(e.envelope.event_id for e in fresh)
            # A retracted change may come back in another block with the same id (the same
            # transaction, mined again): then it must be appended again.
            self._appended.difference_update(e.retracts for e in fresh if e.retracts)
        return len(fresh)

    def _now(self) -> datetime:
        return self._clock.now(UTC)
