"""The audit retention job: cut each chain at a checkpoint by its tenant's tier.

Kafka keeps a topic for one retention, so the audit topic keeps the longest tier's
(``domain.audit_retention.longest_retention_days``); each tenant's own retention is
enforced on the read model. For each chain this finds the prefix of records older than
its tier keeps and appends ``audit_checkpoint_taken`` for the cut; the chainer links it
into the chain and the projector then deletes the prefix
(:mod:`domain.audit_retention`). The platform chain keeps the longest retention.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from domain.audit_retention import (
    PLATFORM,
    Cut,
    checkpoint_event,
    decide_cut,
    longest_retention_days,
    retention_for,
)
from projections import audit_read
from streams.producer import EventAppender

log = logging.getLogger(__name__)
SCHEDULER = "system:audit-retention"

TierLookup = Callable[[asyncpg.Connection, str, datetime], Awaitable[str | None]]


@dataclass(frozen=True)
class Expiry:
    """What the job decided for one chain (``cut`` None: nothing is old enough)."""

    chain: str
    tier: str
    days: int
    cut: Cut | None


async def plan(conn: asyncpg.Connection, chain: str, now: datetime, tier_of: TierLookup) -> Expiry:
    """The cut ``chain`` needs at ``now`` (read from the kept records)."""
    if chain == PLATFORM:
        tier, days = "longest", longest_retention_days()
    else:
        tier, days = retention_for(await tier_of(conn, chain, now))
    if days <= 0:
        return Expiry(chain, tier, days, None)
    kept = await audit_read.expiry_candidates(conn, chain, now - timedelta(days=days))
    return Expiry(chain, tier, days, decide_cut(kept, now, days))


async def expire(
    pool: asyncpg.Pool,
    appender: EventAppender,
    now: datetime,
    *,
    actor: str,
    chain: str | None = None,
    dry_run: bool = False,
    tier_of: TierLookup = audit_read.tier_of,
) -> list[Expiry]:
    """Plan every chain (or ``chain``) and append a checkpoint for each cut, by ``actor``
    (the operator, or the scheduler, that runs the job)."""
    async with pool.acquire() as conn:
        names = [chain] if chain else await audit_read.chains(conn)
        plans = [await plan(conn, name, now, tier_of) for name in names]
    correlation = str(uuid.uuid4())
    for p in plans:
        if p.cut is not None and not dry_run:
            await appender.append(
                checkpoint_event(p.chain, p.cut, p.tier, p.days, actor=actor,
                                 correlation_id=correlation)
            )  # fmt: skip
    return plans


async def keep_expiring(
    pool: asyncpg.Pool, appender: EventAppender, every_s: float, stop: asyncio.Event
) -> None:
    """Run the retention job every ``every_s`` until ``stop``: retention is enforced
    without an operator's cron. Checkpoints' ids come from their cut, so two gateways
    running it, or a run repeated before the projector applied the last, append nothing
    twice. A failed run (Kafka or Postgres away) is logged and tried at the next turn."""
    while not stop.is_set():
        try:
            plans = await expire(pool, appender, datetime.now(UTC), actor=SCHEDULER)
            cuts = [p for p in plans if p.cut is not None]
            if cuts:
                log.info("audit retention: checkpoints for %s", [p.chain for p in cuts])
        except Exception:
            log.exception("audit retention run failed; trying again in %.0f s", every_s)
        try:
            await asyncio.wait_for(stop.wait(), every_s)
        except TimeoutError:
            pass


async def wait_expired(pool: asyncpg.Pool, plans: list[Expiry], timeout_s: float) -> bool:
    """Whether the projector deleted every planned cut within ``timeout_s``."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    pending = [p for p in plans if p.cut is not None]
    while pending:
        async with pool.acquire() as conn:
            still = []
            for p in pending:
                oldest = await audit_read.oldest_kept(conn, p.chain)
                if oldest is not None and p.cut is not None and oldest <= p.cut.through_sequence:
                    still.append(p)
        pending = still
        if pending and asyncio.get_running_loop().time() >= deadline:
            return False
        if pending:
            await asyncio.sleep(0.2)
    return True
