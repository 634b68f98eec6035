"""The audit chainer: the single writer of each tenant's hash-chained audit stream.

Sources are security facts the API observed (``audit_fact_observed``), key lifecycle
and kill-switch events (control topic) and approval decisions (runs topic). For each,
in one Postgres transaction: lock the tenant's row in ``audit_chain_heads`` (so any
number of chainer processes serialise per tenant), skip the fact if it was chained
before, link it after the head, append the chained ``audit_recorded`` (keyed
``audit-<tenant>``, so a tenant's stream is ordered in one partition) and only then
move the head. If the process dies after the append but before the commit, the retry
produces the same record (same id, sequence and hash), which verification skips as a
duplicate.
"""

from __future__ import annotations

import asyncpg

from domain.audit_chain import GENESIS, ChainHead, link
from domain.audit_facts import fact_for, unchained_record
from domain.events import Event
from streams.producer import EventAppender


class AuditChainer:
    """Chains each source fact into its tenant's audit stream (see the module doc)."""

    def __init__(self, appender: EventAppender) -> None:
        self._appender = appender

    async def handle(self, conn: asyncpg.Connection, event: Event) -> None:
        """Chain ``event`` if it is a security fact (inside the caller's transaction)."""
        fact = fact_for(event)
        if fact is None:
            return
        tenant = event.envelope.tenant_id
        await conn.execute(
            "INSERT INTO audit_chain_heads (tenant_id, sequence, hash) VALUES ($1, 0, $2)"
            " ON CONFLICT DO NOTHING",
            tenant,
            GENESIS,
        )
        head = await conn.fetchrow(
            "SELECT sequence, hash FROM audit_chain_heads WHERE tenant_id = $1 FOR UPDATE",
            tenant,
        )
        if await conn.fetchval(
            "SELECT 1 FROM audit_chain_sources WHERE source_event_id = $1", event.envelope.event_id
        ):
            return  # chained already (checked under the tenant's lock)
        record = link(ChainHead(head["sequence"], head["hash"]), unchained_record(event, fact))
        await self._appender.append(record)
        await conn.execute(
            "INSERT INTO audit_chain_sources (source_event_id, tenant_id, sequence)"
            " VALUES ($1, $2, $3)",
            event.envelope.event_id,
            tenant,
            record.sequence,
        )
        await conn.execute(
            "UPDATE audit_chain_heads SET sequence = $2, hash = $3, updated_at = now()"
            " WHERE tenant_id = $1",
            tenant,
            record.sequence,
            record.hash,
        )
