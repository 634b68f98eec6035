"""The per-tenant audit hash chain: linking, verification, and finding the first break."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from domain import ids
from domain.audit_chain import GENESIS, ChainHead, compute_hash, link, verify
from domain.events import AuditRecorded

AT = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def fact(tenant: str, n: int, outcome: str = "success") -> AuditRecorded:
    return AuditRecorded(
        envelope=ids.envelope(
            AuditRecorded,
            run_id=f"audit-{tenant}",
            tenant_id=tenant,
            actor="api-key:ab12cd34",
            correlation_id=f"req-{n}",
            discriminator=(n,),
            occurred_at=AT + timedelta(seconds=n),
        ),
        category="authn",
        action="authenticate",
        outcome=outcome,
        subject="api-key:ab12cd34",
        resource="GET /api/v1/runs",
        details={"n": str(n)},
    )


def chain(tenant: str, count: int) -> list[AuditRecorded]:
    head, out = ChainHead(), []
    for n in range(count):
        record = link(head, fact(tenant, n))
        head = ChainHead(record.sequence, record.hash)
        out.append(record)
    return out


def located(records: list[AuditRecorded]) -> list[tuple[AuditRecorded, str]]:
    return [(r, f"audit/0@{i}") for i, r in enumerate(records)]


def test_link_sets_sequence_prev_hash_and_hash() -> None:
    records = chain("acme", 3)
    assert [r.sequence for r in records] == [1, 2, 3]
    assert records[0].prev_hash == GENESIS
    assert records[1].prev_hash == records[0].hash
    assert all(r.hash == compute_hash(r) for r in records)


def test_an_intact_interleaved_stream_verifies_per_tenant() -> None:
    a, b = chain("acme", 5), chain("globex", 4)
    mixed = [a[0], b[0], a[1], a[2], b[1], b[2], a[3], b[3], a[4]]
    reports = verify(located(mixed))
    assert reports["acme"].broken is None and reports["acme"].records == 5
    assert reports["globex"].broken is None and reports["globex"].head.sequence == 4


def test_a_modified_field_is_the_first_broken_link() -> None:
    records = chain("acme", 5)
    records[2] = replace(records[2], outcome="failure")  # tampered, hash left as it was
    broken = verify(located(records))["acme"].broken
    assert broken is not None
    assert (broken.sequence, broken.reason, broken.location) == (3, "hash", "audit/0@2")
    assert broken.actual == records[2].hash and broken.expected != broken.actual


def test_a_rehashed_forgery_breaks_the_next_link() -> None:
    records = chain("acme", 4)
    forged = replace(records[1], details={"n": "forged"}, hash="")
    records[1] = replace(forged, hash=compute_hash(forged))
    broken = verify(located(records))["acme"].broken
    assert broken is not None and (broken.sequence, broken.reason) == (3, "prev_hash")


def test_a_dropped_record_and_a_reorder_are_found() -> None:
    records = chain("acme", 4)
    dropped = verify(located([records[0], records[2], records[3]]))["acme"].broken
    assert dropped is not None and (dropped.sequence, dropped.reason) == (3, "sequence")
    swapped = verify(located([records[0], records[2], records[1]]))["acme"].broken
    assert swapped is not None and swapped.expected == "2" and swapped.actual == "3"


def test_an_exact_retry_duplicate_is_skipped_not_reported() -> None:
    records = chain("acme", 3)
    report = verify(located([records[0], records[1], records[1], records[2]]))["acme"]
    assert report.broken is None and report.duplicates == 1 and report.records == 3


def test_an_unchained_record_is_broken() -> None:
    report = verify(located([fact("acme", 1)]))["acme"]
    assert report.broken is not None and report.broken.reason == "sequence"


def test_a_trimmed_start_is_anchored_only_when_retention_allows_it() -> None:
    records = chain("acme", 5)[2:]
    strict = verify(located(records))["acme"]
    assert strict.broken is not None and strict.broken.reason == "sequence"
    anchored = verify(located(records), trimmed=True)["acme"]
    assert anchored.broken is None and anchored.anchored_at == 3 and anchored.records == 3


def test_a_log_that_ends_before_the_stored_head_lost_its_newest_records() -> None:
    from domain.audit_chain import ChainHead, TenantReport, missing_tail

    def report(tenant: str, sequence: int, hash_: str) -> TenantReport:
        return TenantReport(tenant, records=sequence, head=ChainHead(sequence, hash_))

    reports = {"a": report("a", 5, "h5"), "b": report("b", 7, "h7"), "c": report("c", 3, "x3")}
    stored = {
        "a": ChainHead(5, "h5"),  # the log reaches the head: fine
        "b": ChainHead(6, "h6"),  # the log is ahead (appended, head not yet moved): fine
        "c": ChainHead(3, "h3"),  # same sequence, another hash: rewritten
        "d": ChainHead(2, "h2"),  # a tenant the log has nothing of: deleted
    }
    problems = missing_tail(reports, stored)
    assert [p.split(":")[0] for p in problems] == ["c", "d"]
    reports["a"] = report("a", 4, "h4")  # the newest record deleted
    assert [p.split(":")[0] for p in missing_tail(reports, stored)] == ["a", "c", "d"]
