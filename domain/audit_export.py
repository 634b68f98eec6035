"""What ``omnihub audit export`` writes, and which records it picks. Pure.

Each exported record is one line (JSON Lines) or row (CSV) holding exactly the JSON
object its hash covers (:func:`domain.audit_chain.canonical_body`), plus its ``hash``
and where it is in the log (``topic``, ``partition``, ``offset``). Anyone can then
recompute every hash and link with SHA-256 and a JSON encoder:
``examples/verify_audit_export.py`` does it with the standard library alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from domain.audit_chain import canonical_body
from domain.audit_retention import checkpoint_through
from domain.events import AuditRecorded

LOCATION = ("hash", "topic", "partition", "offset")
"""The members of an export line that the hash does not cover."""

COLUMNS = (
    "tenant_id", "sequence", "prev_hash", "hash", "topic", "partition", "offset",
    "event_id", "event_type", "run_id", "occurred_at_ms", "causation_id",
    "correlation_id", "actor", "category", "action", "outcome", "subject", "resource",
    "details",
)  # fmt: skip
"""The order of the members of a line, and the CSV header."""

Located = tuple[AuditRecorded, str, int, int]
"""A record and its topic, partition and offset."""


def export_line(record: AuditRecorded, topic: str, partition: int, offset: int) -> dict[str, Any]:
    """The export of one record, members in :data:`COLUMNS` order."""
    body = canonical_body(record)
    body.update(hash=record.hash, topic=topic, partition=partition, offset=offset)
    return {name: body[name] for name in COLUMNS}


def csv_row(line: dict[str, Any]) -> list[str]:
    """``line`` as CSV cells: ``details`` as compact JSON, a null ``causation_id`` empty."""
    cells = dict(line)
    cells["details"] = json.dumps(line["details"], sort_keys=True, ensure_ascii=False)
    cells["causation_id"] = line["causation_id"] or ""
    return [str(cells[name]) for name in COLUMNS]


def select(
    chain: Sequence[Located], since: datetime | None, until: datetime | None
) -> list[Located]:
    """One chain's records to export, from its records in log order.

    Retried duplicates are dropped, and what a retention checkpoint cut (the log keeps
    the longest tier's retention; the read model and the export keep the tenant's).
    Then the contiguous run of sequences from the first record at or after ``since`` to
    the last one before ``until``: a time range never leaves a hole in the chain.
    """
    kept = _expired_dropped(_deduped(chain))
    times = [r.envelope.occurred_at for r, *_ in kept]
    start = next((i for i, t in enumerate(times) if since is None or t >= since), len(kept))
    ends = [i for i, t in enumerate(times) if until is None or t < until]
    return kept[start : ends[-1] + 1] if ends and ends[-1] >= start else []


def _deduped(chain: Iterable[Located]) -> list[Located]:
    out: list[Located] = []
    for item in chain:
        r = item[0]
        if (
            out
            and r.envelope.event_id == out[-1][0].envelope.event_id
            and r.hash == out[-1][0].hash
        ):
            continue
        out.append(item)
    return out


def _expired_dropped(chain: list[Located]) -> list[Located]:
    cuts = [checkpoint_through(r.category, r.action, r.details) for r, *_ in chain]
    through = max((c[0] for c in cuts if c is not None), default=0)
    return [item for item in chain if item[0].sequence > through]
