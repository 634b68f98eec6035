"""The hash chain over one tenant's audit stream, and its verification. Pure.

Record ``n`` of a tenant carries ``sequence = n`` (from 1), ``prev_hash`` (the ``hash``
of record ``n - 1``, or :data:`GENESIS` for the first) and
``hash = SHA-256(prev_hash || "\\n" || canonical bytes of the record)``. The canonical
bytes are compact, key-sorted JSON of every field except ``hash`` itself, so changing
any field, dropping a record, reordering or inserting one breaks the chain at that point.

A record that repeats the previous one exactly (same event id and hash) is an
idempotent retry of an append (the chainer appended, then crashed before recording
that it had) and is skipped, not reported.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from domain.events import AuditRecorded

GENESIS = "0" * 64


def canonical_bytes(record: AuditRecorded) -> bytes:
    """The bytes the hash covers: every field of ``record`` but ``hash``."""
    body = canonical_body(record)
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def canonical_body(record: AuditRecorded) -> dict[str, Any]:
    """What the hash covers, as a JSON object (an export line carries it as is)."""
    env = record.envelope
    return {
        "event_id": env.event_id,
        "event_type": env.event_type,
        "run_id": env.run_id,
        "tenant_id": env.tenant_id,
        "occurred_at_ms": int(env.occurred_at.timestamp() * 1000),
        "causation_id": env.causation_id,
        "correlation_id": env.correlation_id,
        "actor": env.actor,
        "category": record.category,
        "action": record.action,
        "outcome": record.outcome,
        "subject": record.subject,
        "resource": record.resource,
        "details": dict(sorted(record.details.items())),
        "sequence": record.sequence,
        "prev_hash": record.prev_hash,
    }


def compute_hash(record: AuditRecorded) -> str:
    """The hash ``record`` must carry, given its ``prev_hash`` and content."""
    digest = hashlib.sha256(record.prev_hash.encode() + b"\n" + canonical_bytes(record))
    return digest.hexdigest()


@dataclass(frozen=True)
class ChainHead:
    """Where a tenant's chain ends: the last sequence and its hash."""

    sequence: int = 0
    hash: str = GENESIS


def link(head: ChainHead, record: AuditRecorded) -> AuditRecorded:
    """``record`` chained after ``head`` (its sequence, prev_hash and hash set)."""
    chained = replace(record, sequence=head.sequence + 1, prev_hash=head.hash, hash="")
    return replace(chained, hash=compute_hash(chained))


@dataclass(frozen=True)
class BrokenLink:
    """The first record of a tenant's stream that does not continue the chain."""

    tenant_id: str
    sequence: int
    location: str
    reason: str
    expected: str
    actual: str


@dataclass
class TenantReport:
    """What verification found for one tenant."""

    tenant_id: str
    records: int = 0
    duplicates: int = 0
    head: ChainHead = field(default_factory=ChainHead)
    broken: BrokenLink | None = None
    anchored_at: int | None = None  # first sequence seen, when older records were trimmed
    _last_event_id: str = ""


def _check(report: TenantReport, record: AuditRecorded, location: str) -> BrokenLink | None:
    head = report.head
    seq = record.sequence

    def broken(reason: str, expected: object, actual: object) -> BrokenLink:
        return BrokenLink(report.tenant_id, seq, location, reason, str(expected), str(actual))

    if seq != head.sequence + 1:
        return broken("sequence", head.sequence + 1, seq)
    if record.prev_hash != head.hash:
        return broken("prev_hash", head.hash, record.prev_hash)
    expected = compute_hash(record)
    if record.hash != expected:
        return broken("hash", expected, record.hash)
    return None


def verify_one(
    report: TenantReport, record: AuditRecorded, location: str, *, trimmed: bool = False
) -> None:
    """Fold ``record`` (found at ``location``) into its tenant's ``report``.

    With ``trimmed`` (retention deleted the oldest records), a tenant's first record may
    start later than sequence 1: the chain is then checked from it onwards.
    """
    if report.broken is not None:
        return
    if trimmed and report.records == 0 and record.sequence > 1:
        report.head = ChainHead(record.sequence - 1, record.prev_hash)
        report.anchored_at = record.sequence
    if record.envelope.event_id == report._last_event_id and record.hash == report.head.hash:
        report.duplicates += 1
        return
    report.broken = _check(report, record, location)
    if report.broken is None:
        report.records += 1
        report.head = ChainHead(record.sequence, record.hash)
        report._last_event_id = record.envelope.event_id


def verify(
    records: Iterable[tuple[AuditRecorded, str]], *, trimmed: bool = False
) -> dict[str, TenantReport]:
    """Verify every tenant's chain in ``records`` (in log order, with their locations)."""
    reports: dict[str, TenantReport] = {}
    for record, location in records:
        tenant = record.envelope.tenant_id
        report = reports.setdefault(tenant, TenantReport(tenant))
        verify_one(report, record, location, trimmed=trimmed)
    return reports


def missing_tail(reports: Mapping[str, TenantReport], stored: Mapping[str, ChainHead]) -> list[str]:
    """What the log lacks against the chainer's stored heads (pure).

    The chainer moves a tenant's head only after its record was appended, so the log
    must reach every stored head: a log that ends earlier, or at the head's sequence with
    another hash, lost its newest records (or was rewritten). Verifying the log alone
    cannot see that.
    """
    problems = []
    for tenant, head in sorted(stored.items()):
        report = reports.get(tenant)
        if report is None:
            problems.append(f"{tenant}: no audit records in the log, the stored head is at "
                            f"sequence {head.sequence} {head.hash}")  # fmt: skip
        elif report.broken is None and (
            report.head.sequence < head.sequence
            or (report.head.sequence == head.sequence and report.head.hash != head.hash)
        ):  # a log ahead of the head is a record appended before its head moved
            problems.append(
                f"{tenant}: the log ends at sequence {report.head.sequence} "
                f"{report.head.hash}, the stored head is at {head.sequence} {head.hash}"
            )
    return problems
