"""``omnihub audit verify``: recompute every tenant's audit chain from the log."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from domain.audit_chain import TenantReport, verify_one
from domain.audit_retention import PLATFORM
from domain.events import AuditRecorded
from streams.codec import EventCodec
from streams.log_reader import read_log


@dataclass
class LogVerification:
    """Per-tenant reports, and records that are not audit records at all."""

    tenants: dict[str, TenantReport] = field(default_factory=dict)
    foreign: list[str] = field(default_factory=list)  # "topic/partition@offset: why"

    @property
    def ok(self) -> bool:
        return not self.foreign and all(r.broken is None for r in self.tenants.values())


async def verify_topic(
    bootstrap: str,
    codec: EventCodec,
    topics: Sequence[str],
    *,
    tenant: str | None = None,
    trimmed: bool = False,
    until: datetime | None = None,
) -> LogVerification:
    """Read ``topics`` from the beginning to their current end and verify each chain;
    with ``until``, only the records that occurred before it (the chain as of then)."""
    out = LogVerification()
    async for rec in read_log(bootstrap, codec, topics, from_beginning=True, follow=False):
        where = f"{rec.topic}/{rec.partition}@{rec.offset}"
        if not isinstance(rec.event, AuditRecorded):
            why = rec.error or f"not an audit record ({rec.event_type})"
            out.foreign.append(f"{where}: {why}")
            continue
        owner = rec.event.envelope.tenant_id
        if tenant is not None and owner != tenant:
            continue
        if until is not None and rec.event.envelope.occurred_at >= until:
            continue
        report = out.tenants.setdefault(owner, TenantReport(owner))
        verify_one(report, rec.event, where, trimmed=trimmed)
    return out


def describe(result: LogVerification) -> list[str]:
    """Human-readable lines: one per tenant, then any foreign records."""
    lines = []
    for chain, r in sorted(result.tenants.items()):
        tenant = "platform" if chain == PLATFORM else chain
        if r.broken is None:
            anchor = f", anchored at {r.anchored_at} (retention)" if r.anchored_at else ""
            lines.append(
                f"{tenant}: ok, {r.records} records, head {r.head.sequence} "
                f"{r.head.hash}, {r.duplicates} retried duplicates{anchor}"
            )
        else:
            b = r.broken
            lines.append(
                f"{tenant}: BROKEN at sequence {b.sequence} ({b.location}): "
                f"{b.reason} expected {b.expected} but found {b.actual}"
            )
    lines.extend(f"foreign record {f}" for f in result.foreign)
    return lines
