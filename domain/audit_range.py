"""Verification of a stretch of one chain as the read model keeps it. Pure.

The API answers a page of audit records with the verification of the contiguous range
of sequences the page spans: each record's hash is recomputed and linked to the one
before, and the range's first record is anchored at the genesis, at the record before
it (still kept), or at a chained retention checkpoint that vouches for its
``prev_hash``. A first record that links to nothing kept was cut without a checkpoint.

A record whose details an erasure overwrote in the read model (``domain.privacy``) can
no longer be hashed there: its links are still checked (its sequence and ``prev_hash``,
and the next record's ``prev_hash`` against its stored hash) and it is counted as
``erased``; the log, which erasure does not rewrite, still verifies it in full.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from domain.audit_chain import GENESIS, BrokenLink, ChainHead, TenantReport, verify_one
from domain.events import AuditRecorded
from domain.privacy import ERASED


@dataclass(frozen=True)
class RangeVerification:
    """The verification block of an audit page."""

    ok: bool
    from_sequence: int | None
    to_sequence: int | None
    records: int
    anchor: str  # genesis, previous, checkpoint, none (broken) or empty (no records)
    head: ChainHead | None
    broken: BrokenLink | None
    erased: int = 0  # records whose links were checked, not their content (see above)


def _anchor(
    first: AuditRecorded, previous_hash: str | None, checkpoints: Mapping[int, str]
) -> tuple[str, str | None]:
    before = first.sequence - 1
    if before == 0:
        return "genesis", GENESIS
    if previous_hash is not None:
        return "previous", previous_hash
    if before in checkpoints:
        return "checkpoint", checkpoints[before]
    return "none", None


def verify_range(
    chain: str,
    records: Sequence[AuditRecorded],
    *,
    previous_hash: str | None,
    checkpoints: Mapping[int, str],
) -> RangeVerification:
    """Verify ``records`` (one chain's, in sequence order), given the hash of the kept
    record just before them (or None) and the kept checkpoints (through_sequence ->
    through_hash)."""
    if not records:
        return RangeVerification(True, None, None, 0, "empty", None, None)
    first = records[0]
    anchor, expected = _anchor(first, previous_hash, checkpoints)
    if expected is None:
        why = BrokenLink(chain, first.sequence, f"sequence {first.sequence}", "anchor",
                         "a kept record or checkpoint before it", "nothing")  # fmt: skip
        return RangeVerification(False, first.sequence, records[-1].sequence, 0, anchor, None, why)
    report = TenantReport(chain, head=ChainHead(first.sequence - 1, expected))
    erased = 0
    for record in records:
        if report.broken is None and ERASED in record.details.values():
            erased += 1
            _fold_erased(report, record)
        else:
            verify_one(report, record, f"sequence {record.sequence}")
    return RangeVerification(
        report.broken is None,
        first.sequence,
        records[-1].sequence,
        report.records,
        anchor,
        report.head,
        report.broken,
        erased,
    )


def _fold_erased(report: TenantReport, record: AuditRecorded) -> None:
    """Fold an erased record by its links alone: its stored hash links the next one."""
    head, seq = report.head, record.sequence
    if seq != head.sequence + 1 or record.prev_hash != head.hash:
        reason, want, got = (
            ("sequence", head.sequence + 1, seq)
            if seq != head.sequence + 1
            else ("prev_hash", head.hash, record.prev_hash)
        )
        report.broken = BrokenLink(
            report.tenant_id, seq, f"sequence {seq}", reason, str(want), str(got)
        )
        return
    report.records += 1
    report.head = ChainHead(seq, record.hash)
