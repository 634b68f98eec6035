"""Recording security decisions as ``audit_fact_observed`` events.

The API only observes; the audit chainer (``streams/audit_chain.py``) is the single
writer that sequences and hash-chains each tenant's stream. Denials are recorded before
the response goes out; successes are recorded in the background so they add no latency
(a crash can lose the last few success records, never a denial that was answered). The
background ones are gathered for ``linger_s`` and appended together, one append per
batch instead of one per request; :meth:`AuditSink.drain` flushes them at shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from domain import ids
from domain.events import AuditFactObserved
from streams.producer import EventAppender, LogUnavailable

log = logging.getLogger(__name__)


def audit_fact(
    tenant_id: str,
    category: str,
    action: str,
    outcome: str,
    *,
    subject: str,
    resource: str = "",
    details: Mapping[str, str] | None = None,
    correlation_id: str | None = None,
) -> AuditFactObserved:
    """A new observed fact for ``tenant_id``'s audit stream."""
    observation = str(uuid.uuid4())
    return AuditFactObserved(
        envelope=ids.envelope(
            AuditFactObserved,
            run_id=f"audit-{tenant_id}",
            tenant_id=tenant_id,
            actor=subject,
            correlation_id=correlation_id or observation,
            discriminator=(observation,),
        ),
        category=category,
        action=action,
        outcome=outcome,
        subject=subject,
        resource=resource,
        details=dict(details or {}),
    )


class AuditSink:
    """Appends audit facts now (:meth:`record`) or in the background (:meth:`record_later`)."""

    def __init__(self, appender: Callable[[], EventAppender], linger_s: float = 0.005) -> None:
        self._appender = appender  # looked up per append: the process may swap it
        self._linger_s = linger_s
        self._batch: list[AuditFactObserved] = []
        self._gathering: asyncio.Task[None] | None = None  # sleeping until it flushes _batch
        self._pending: set[asyncio.Task[None]] = set()

    async def record(self, fact: AuditFactObserved) -> None:
        """Append ``fact`` and wait for the log; a failure is logged, not raised."""
        await self._append([fact])

    def record_later(self, fact: AuditFactObserved) -> None:
        """Append ``fact`` without waiting, with the others of the next ``linger_s``."""
        self._batch.append(fact)
        if self._gathering is None:
            self._gathering = self._spawn(self._flush_later())

    async def drain(self) -> None:
        """Append the batch still gathering now and wait for every background append
        (at shutdown)."""
        if self._gathering is not None:
            self._gathering.cancel()  # still asleep: it has not taken the batch yet
            self._gathering = None
            self._spawn(self._flush())
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def _flush_later(self) -> None:
        await asyncio.sleep(self._linger_s)
        self._gathering = None
        await self._flush()

    async def _flush(self) -> None:
        batch, self._batch = self._batch, []
        await self._append(batch)

    async def _append(self, facts: list[AuditFactObserved]) -> None:
        try:
            await self._appender().append_many(facts)
        except LogUnavailable:
            for fact in facts:
                log.error("audit fact not recorded (log unavailable): %s", fact)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return task
