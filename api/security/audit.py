"""Recording security decisions as ``audit_fact_observed`` events.

The API only observes; the audit chainer (``streams/audit_chain.py``) is the single
writer that sequences and hash-chains each tenant's stream. Denials are recorded before
the response goes out; successes are recorded in the background so they add no latency
(a crash can lose the last few success records, never a denial that was answered).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Mapping

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

    def __init__(self, appender: Callable[[], EventAppender]) -> None:
        self._appender = appender  # looked up per append: the process may swap it
        self._pending: set[asyncio.Task[None]] = set()

    async def record(self, fact: AuditFactObserved) -> None:
        """Append ``fact`` and wait for the log; a failure is logged, not raised."""
        try:
            await self._appender().append(fact)
        except LogUnavailable:
            log.error("audit fact not recorded (log unavailable): %s", fact)

    def record_later(self, fact: AuditFactObserved) -> None:
        """Append ``fact`` without waiting."""
        task = asyncio.create_task(self.record(fact))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def drain(self) -> None:
        """Wait for every background append (at shutdown)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
