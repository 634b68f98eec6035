"""Audit chains by tier, cut at chained checkpoints; the platform chain; the export and
its standalone verifier."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from domain import ids
from domain.audit_chain import ChainHead, link
from domain.audit_export import COLUMNS, export_line, select
from domain.audit_facts import fact_for, unchained_record
from domain.audit_range import verify_range
from domain.audit_retention import (
    DEFAULT_RETENTION_DAYS,
    PLATFORM,
    chains_for,
    checkpoint_event,
    decide_cut,
    longest_retention_days,
    retention_for,
)
from domain.events import AuditRecorded, KillSwitchToggled
from domain.privacy import ERASED
from omnihub import REPO_ROOT
from omnihub.settings import Settings
from streams.audit_export import render
from streams.topics import topic_specs
from tests.unit.test_audit_chain import AT, chain, fact

VERIFIER = REPO_ROOT / "examples" / "verify_audit_export.py"


def cut_and_checkpoint(records: list[AuditRecorded], through: int) -> list[AuditRecorded]:
    """``records`` followed by the chained checkpoint that cuts through ``through``."""
    old = records[through - 1]
    days = 30
    cut = decide_cut(
        [(r.sequence, r.hash, r.envelope.occurred_at) for r in records],
        old.envelope.occurred_at + timedelta(days=days, milliseconds=1),
        days,
    )
    assert cut is not None and cut.through_sequence == through
    source = checkpoint_event("acme", cut, "free", days, actor="system", correlation_id="c")
    fact_ = fact_for(source)
    assert fact_ is not None
    last = records[-1]
    checkpoint = link(ChainHead(last.sequence, last.hash), unchained_record(source, fact_))
    return [*records, checkpoint]


def test_retention_comes_from_the_tier_and_defaults_to_90_days() -> None:
    assert retention_for(None) == ("default", DEFAULT_RETENTION_DAYS) == ("default", 90)
    assert retention_for("free") == ("free", 90)
    assert retention_for("enterprise") == ("enterprise", 0)  # forever
    assert longest_retention_days() == 0  # so the audit topic keeps everything
    audit = next(t for t in topic_specs(Settings()) if t.name.endswith(".audit.v1"))
    assert audit.config["retention.ms"] == "-1"


def test_only_a_prefix_older_than_the_retention_is_cut() -> None:
    rows = [(1, "h1", AT), (2, "h2", AT + timedelta(days=5)), (3, "h3", AT), (4, "h4", AT)]
    cut = decide_cut(rows, AT + timedelta(days=31), 30)
    assert cut is not None and (cut.through_sequence, cut.through_hash) == (1, "h1")
    assert decide_cut(rows, AT + timedelta(days=29), 30) is None
    assert decide_cut(rows, AT + timedelta(days=3650), 0) is None  # forever


def test_what_remains_after_a_checkpoint_verifies_from_it() -> None:
    records = cut_and_checkpoint(chain("acme", 10), through=6)
    kept = records[6:]  # the projector deleted sequences 1-6
    checkpoints = {6: records[5].hash}
    result = verify_range("acme", kept, previous_hash=None, checkpoints=checkpoints)
    assert result.ok and result.anchor == "checkpoint" and result.records == 5
    assert (result.from_sequence, result.to_sequence) == (7, 11)


def test_tampering_after_the_checkpoint_still_fails() -> None:
    records = cut_and_checkpoint(chain("acme", 10), through=6)
    kept = records[6:]
    kept[2] = replace(kept[2], outcome="failure")
    result = verify_range("acme", kept, previous_hash=None, checkpoints={6: records[5].hash})
    assert not result.ok and result.broken is not None
    assert (result.broken.sequence, result.broken.reason) == (9, "hash")


def test_records_cut_without_a_checkpoint_are_found() -> None:
    kept = chain("acme", 10)[6:]
    result = verify_range("acme", kept, previous_hash=None, checkpoints={})
    assert not result.ok and result.anchor == "none"
    assert result.broken is not None and result.broken.reason == "anchor"
    forged = verify_range("acme", kept, previous_hash=None, checkpoints={6: "f" * 64})
    assert not forged.ok and forged.broken is not None and forged.broken.reason == "prev_hash"


def test_a_kill_switch_is_chained_for_its_tenant_and_the_platform() -> None:
    toggle = KillSwitchToggled(
        envelope=ids.envelope(
            KillSwitchToggled, run_id="killswitch-runs", tenant_id="ops",
            actor="api-key:ab12cd34", correlation_id="c", discriminator=("x",),
        ),
        feature="runs", enabled=False, reason="incident",
    )  # fmt: skip
    assert chains_for(toggle) == ["ops", PLATFORM]
    assert chains_for(fact("acme", 1)) == ["acme"]
    fact_ = fact_for(toggle)
    assert fact_ is not None
    mine, platform = (unchained_record(toggle, fact_, c) for c in chains_for(toggle))
    assert platform.envelope.run_id == "audit-*" and platform.envelope.tenant_id == PLATFORM
    assert platform.details["tenant"] == "ops" and "tenant" not in mine.details
    assert platform.envelope.event_id != mine.envelope.event_id


def test_the_export_picks_a_contiguous_kept_range() -> None:
    records = cut_and_checkpoint(chain("acme", 10), through=3)
    located = [(r, "omnihub.audit.v1", 2, 100 + i) for i, r in enumerate(records)]
    located.insert(5, located[4])  # a retried duplicate of sequence 5
    picked = select(located, AT + timedelta(seconds=4), AT + timedelta(seconds=8))
    # the checkpoint (occurred later) is outside the range; 1-3 are cut
    assert [r.sequence for r, *_ in picked] == [5, 6, 7, 8]
    assert [r.sequence for r, *_ in select(located, None, None)] == list(range(4, 12))


def run_verifier(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-I", str(VERIFIER), str(path)], capture_output=True, text=True
    )


def test_the_standalone_verifier_checks_an_export_and_finds_an_edit(tmp_path: Path) -> None:
    records = cut_and_checkpoint(chain("acme", 10), through=3)
    located = [(r, "omnihub.audit.v1", 2, 100 + i) for i, r in enumerate(records)]
    lines = [export_line(*item) for item in select(located, None, None)]
    assert list(lines[0]) == list(COLUMNS)
    for fmt in ("jsonl", "csv"):
        good = tmp_path / f"audit.{fmt}"
        good.write_text(render(lines, fmt), encoding="utf-8")
        done = run_verifier(good)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "acme: ok, sequences 4-11" in done.stdout
        assert "after the retention checkpoint at sequence 11" in done.stdout
        assert lines[-1]["hash"] in done.stdout
    edited = [dict(line) for line in lines]
    edited[2]["outcome"] = "failure"
    bad = tmp_path / "edited.jsonl"
    bad.write_text("".join(json.dumps(line) + "\n" for line in edited), encoding="utf-8")
    done = run_verifier(bad)
    assert done.returncode == 1 and "line 3, sequence 6: hash" in done.stdout
    dropped = tmp_path / "dropped.csv"
    dropped.write_text(render(lines[:3] + lines[4:], "csv"), encoding="utf-8")
    done = run_verifier(dropped)
    assert done.returncode == 1 and "expected sequence 7" in done.stdout


def test_an_erased_record_is_checked_by_its_links_only() -> None:
    records = chain("acme", 5)
    erased = [*records[:2], replace(records[2], details={"n": ERASED}), *records[3:]]
    result = verify_range("acme", erased, previous_hash=None, checkpoints={})
    assert result.ok and result.erased == 1 and result.records == 5
    dropped = [*records[:2], replace(records[3], details={"n": ERASED}), *records[4:]]
    broken = verify_range("acme", dropped, previous_hash=None, checkpoints={})
    assert not broken.ok and broken.broken is not None
    assert (broken.broken.sequence, broken.broken.reason) == (4, "sequence")
    tampered = [*records[:2], replace(records[2], details={"n": ERASED}, outcome="x"), *records[3:]]
    assert verify_range("acme", tampered, previous_hash=None, checkpoints={}).ok  # see README
