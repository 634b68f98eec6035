"""The audit chainer: the single writer of each hash-chained audit stream.

Sources are security facts the API observed (``audit_fact_observed``), key lifecycle
and kill-switch events (control topic), approval decisions (runs topic) and retention
checkpoints (``audit_checkpoint_taken``). Each goes to its tenant's chain; a
platform-wide action (a kill switch) also goes to the platform chain
(:mod:`domain.audit_retention`). For each chain, in one Postgres transaction: lock the
chain's row in ``audit_chain_heads`` (so any number of chainer processes serialise per
chain), skip the fact if it was chained there before, link it after the head, append
the chained ``audit_recorded`` (keyed ``audit-<chain>``, so a chain is ordered in one
partition) and only then move the head. If the process dies after the append but before
the commit, the retry produces the same record (same id, sequence and hash), which
verification skips as a duplicate.
"""

from __future__ import annotations

import asyncpg

from domain.audit_chain import GENESIS, ChainHead, link
from domain.audit_facts import Fact, fact_for, unchained_record
from domain.audit_retention import chains_for
from domain.events import Event
from streams.producer import EventAppender


def source_key(event: Event, chain: str) -> str:
    """The key that marks ``event`` as chained in ``chain`` (the tenant's: its id)."""
    env = event.envelope
    return env.event_id if chain == env.tenant_id else f"{env.event_id}@{chain}"


class AuditChainer:
    """Chains each source fact into its audit chains (see the module doc)."""

    def __init__(self, appender: EventAppender) -> None:
        self._appender = appender

    async def handle(self, conn: asyncpg.Connection, event: Event) -> None:
        """Chain ``event`` if it is a security fact (inside the caller's transaction)."""
        fact = fact_for(event)
        if fact is None:
            return
        for chain in chains_for(event):
            await self._chain(conn, event, fact, chain)

    async def _chain(self, conn: asyncpg.Connection, event: Event, fact: Fact, chain: str) -> None:
        await conn.execute(
            "INSERT INTO audit_chain_heads (tenant_id, sequence, hash) VALUES ($1, 0, $2)"
            " ON CONFLICT DO NOTHING",
            chain,
            GENESIS,
        )
        head = await conn.fetchrow(
            "SELECT sequence, hash FROM audit_chain_heads WHERE tenant_id = $1 FOR UPDATE",
            chain,
        )
        key = source_key(event, chain)
        if await conn.fetchval("SELECT 1 FROM audit_chain_sources WHERE source_event_id = $1", key):
            return  # chained already (checked under the chain's lock)
        record = link(
            ChainHead(head["sequence"], head["hash"]), unchained_record(event, fact, chain)
        )
        await self._appender.append(record)
        await conn.execute(
            "INSERT INTO audit_chain_sources (source_event_id, tenant_id, sequence)"
            " VALUES ($1, $2, $3)",
            key,
            chain,
            record.sequence,
        )
        await conn.execute(
            "UPDATE audit_chain_heads SET sequence = $2, hash = $3, updated_at = now()"
            " WHERE tenant_id = $1",
            chain,
            record.sequence,
            record.hash,
        )
