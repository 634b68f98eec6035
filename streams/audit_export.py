"""``omnihub audit export``: read the audit chains from the log, with their positions."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from domain.audit_export import COLUMNS, Located, csv_row, export_line, select
from domain.events import AuditRecorded
from streams.codec import EventCodec
from streams.log_reader import read_log


async def export_lines(
    bootstrap: str,
    codec: EventCodec,
    topics: Sequence[str],
    *,
    chain: str | None,
    since: datetime | None,
    until: datetime | None,
) -> list[dict[str, Any]]:
    """The export lines of ``chain`` (every chain if None) between ``since`` and
    ``until``, each chain in sequence order, chains sorted by name."""
    chains: dict[str, list[Located]] = {}
    async for rec in read_log(bootstrap, codec, topics, from_beginning=True, follow=False):
        if not isinstance(rec.event, AuditRecorded):
            continue  # not a chain record; `omnihub audit verify` reports these
        owner = rec.event.envelope.tenant_id
        if chain is None or owner == chain:
            chains.setdefault(owner, []).append((rec.event, rec.topic, rec.partition, rec.offset))
    return [
        export_line(*item) for name in sorted(chains) for item in select(chains[name], since, until)
    ]


def render(lines: Iterable[dict[str, Any]], fmt: str) -> str:
    """``lines`` as JSON Lines (``jsonl``) or CSV with a header (``csv``)."""
    if fmt == "jsonl":
        return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(csv_row(line) for line in lines)
    return out.getvalue()
