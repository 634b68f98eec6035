"""``omnihub_approvals_waiting`` and ``omnihub_approval_oldest_wait_seconds``, from the
approvals read model (the projector keeps both current, every ``every_s`` seconds)."""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from omnihub import metrics
from projections.migrate import quote_ident

log = logging.getLogger(__name__)


async def approvals_waiting(pool: asyncpg.Pool, schema: str) -> tuple[int, float]:
    """How many approvals are pending, and how long the oldest has waited (seconds)."""
    row = await pool.fetchrow(
        "SELECT count(*) AS n, coalesce(extract(epoch FROM now() - min(requested_at)), 0) AS age"
        f" FROM {quote_ident(schema)}.approvals WHERE status = 'pending'"
    )
    return int(row["n"]), max(float(row["age"]), 0.0)


async def keep_approval_gauges(pool: asyncpg.Pool, schema: str, every_s: float = 15.0) -> None:
    """Refresh the gauges until cancelled; a failed read keeps the last values."""
    while True:
        try:
            waiting, oldest = await approvals_waiting(pool, schema)
            metrics.APPROVALS_WAITING.set(waiting)
            metrics.APPROVAL_OLDEST_WAIT.set(oldest)
        except (asyncpg.PostgresError, OSError) as exc:
            log.warning("cannot read the waiting approvals: %r", exc)
        await asyncio.sleep(every_s)
