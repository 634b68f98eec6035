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

from collections.abc import Mapping

import asyncpg

from domain import ids
from domain.audit_chain import GENESIS, ChainHead, link
from domain.events import (
    ApiKeyCreated,
    ApiKeyRevoked,
    ApiKeyRotated,
    ApprovalDenied,
    ApprovalGranted,
    AuditFactObserved,
    AuditRecorded,
    Event,
    KillSwitchToggled,
)
from streams.producer import EventAppender

SOURCE_TYPES = frozenset(
    {
        "audit_fact_observed",
        "api_key_created",
        "api_key_rotated",
        "api_key_revoked",
        "kill_switch_toggled",
        "approval_granted",
        "approval_denied",
    }
)

Fact = tuple[str, str, str, str, str, Mapping[str, str]]


def fact_for(event: Event) -> Fact | None:
    """(category, action, outcome, subject, resource, details) to audit for ``event``."""
    actor = event.envelope.actor
    match event:
        case AuditFactObserved():
            e = event
            return (e.category, e.action, e.outcome, e.subject, e.resource, e.details)
        case ApiKeyCreated(key_id=key_id, prefix=prefix, scopes=scopes):
            return (
                "key_lifecycle",
                "create",
                "success",
                actor,
                f"api_key:{key_id}",
                {
                    "prefix": prefix,
                    "scopes": ",".join(scopes),
                    "expires_at": str(event.expires_at or ""),
                },
            )
        case ApiKeyRotated(key_id=key_id):
            return (
                "key_lifecycle",
                "rotate",
                "success",
                actor,
                f"api_key:{key_id}",
                {
                    "new_key_id": event.new_key_id,
                    "new_prefix": event.new_prefix,
                    "old_key_expires_at": event.old_key_expires_at.isoformat(),
                },
            )
        case ApiKeyRevoked(key_id=key_id, prefix=prefix, reason=reason):
            return (
                "key_lifecycle",
                "revoke",
                "success",
                actor,
                f"api_key:{key_id}",
                {"prefix": prefix, "reason": reason},
            )
        case KillSwitchToggled(feature=feature, enabled=enabled, reason=reason):
            return (
                "kill_switch",
                "enable" if enabled else "disable",
                "success",
                actor,
                f"feature:{feature}",
                {"reason": reason},
            )
        case ApprovalGranted() | ApprovalDenied():
            denied = isinstance(event, ApprovalDenied)
            details = {
                "run_id": event.envelope.run_id,
                "step_id": event.step_id,
                "reason": event.reason or "",
            }
            if isinstance(event, ApprovalDenied):
                details["timed_out"] = str(event.timed_out).lower()
            return (
                "approval",
                "deny" if denied else "grant",
                "success",
                event.approver,
                f"approval:{event.approval_id}",
                details,
            )
    return None


def unchained_record(event: Event, fact: Fact) -> AuditRecorded:
    """The audit record for ``event`` before linking; its id is derived from the source."""
    env = event.envelope
    category, action, outcome, subject, resource, details = fact
    return AuditRecorded(
        envelope=ids.envelope(
            AuditRecorded,
            run_id=f"audit-{env.tenant_id}",
            tenant_id=env.tenant_id,
            actor=env.actor,
            correlation_id=env.correlation_id,
            causation_id=env.event_id,
            discriminator=(env.event_id,),
            occurred_at=env.occurred_at,
        ),
        category=category,
        action=action,
        outcome=outcome,
        subject=subject,
        resource=resource,
        details=dict(details),
    )


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
