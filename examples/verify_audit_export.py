"""Verify an OmniHub audit export with the Python standard library alone.

    python3 examples/verify_audit_export.py audit.jsonl        # or audit.csv

Each line (or CSV row) is one chained audit record: the JSON object its hash covers,
plus ``hash``, ``topic``, ``partition`` and ``offset`` (where it is in the Kafka log).
For each chain (``tenant_id``; ``*`` is the platform chain), in order:

1. drop ``hash``, ``topic``, ``partition`` and ``offset``; the rest is the body;
2. ``hash`` must be SHA-256 of ``prev_hash``, a newline, and the body as compact JSON
   with sorted keys and UTF-8 text (``json.dumps(body, sort_keys=True,
   separators=(",", ":"), ensure_ascii=False)``);
3. ``sequence`` must be the previous record's plus one, and ``prev_hash`` its ``hash``.

The first record links to what came before the export: the genesis (64 zeros) at
sequence 1, a retention checkpoint in the export that vouches for its ``prev_hash``,
or an earlier record (compare with the previous export). The last hash is the chain's
head: compare it with a head published outside OmniHub (``omnihub audit verify``
prints it). Exit 0 when every chain verifies, 1 otherwise, naming the first bad line.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sys
from typing import Any

GENESIS = "0" * 64
NOT_HASHED = ("hash", "topic", "partition", "offset")
INTEGERS = ("sequence", "occurred_at_ms", "partition", "offset")


def read(path: str) -> list[dict[str, Any]]:
    """The export's records, typed as in JSON Lines (CSV cells are converted back)."""
    with open(path, encoding="utf-8", newline="") as f:
        if not path.endswith(".csv"):
            return [json.loads(line) for line in f if line.strip()]
        rows = list(csv.DictReader(f))
    for row in rows:
        for name in INTEGERS:
            row[name] = int(row[name])
        row["details"] = json.loads(row["details"])
        row["causation_id"] = row["causation_id"] or None  # an empty cell is null
    return rows


def expected_hash(record: dict[str, Any]) -> str:
    """The hash ``record`` must carry."""
    body = {k: v for k, v in record.items() if k not in NOT_HASHED}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(record["prev_hash"].encode() + b"\n" + text.encode()).hexdigest()


def anchor(first: dict[str, Any], records: list[dict[str, Any]]) -> str:
    """What the chain's first exported record links to."""
    if first["sequence"] == 1:
        return "the genesis" if first["prev_hash"] == GENESIS else ""
    for r in records:
        d = r["details"]
        if (r["category"], r["action"]) == ("retention", "checkpoint") and (
            d.get("through_sequence") == str(first["sequence"] - 1)
            and d.get("through_hash") == first["prev_hash"]
        ):
            return f"the retention checkpoint at sequence {r['sequence']}"
    return f"an earlier record with hash {first['prev_hash']} (not in this export)"


def verify_chain(chain: str, records: list[tuple[int, dict[str, Any]]]) -> str | None:
    """None if the chain verifies (and prints it), else why not."""
    prev: dict[str, Any] | None = None
    for line, r in records:
        where = f"chain {chain!r}, line {line}, sequence {r['sequence']}"
        if prev is not None and r["sequence"] != prev["sequence"] + 1:
            return f"{where}: expected sequence {prev['sequence'] + 1}"
        if prev is not None and r["prev_hash"] != prev["hash"]:
            return f"{where}: prev_hash is not the previous record's hash"
        if r["hash"] != expected_hash(r):
            return f"{where}: hash {r['hash']} should be {expected_hash(r)}"
        prev = r
    first, last = records[0][1], records[-1][1]
    start = anchor(first, [r for _, r in records])
    if not start:
        return f"chain {chain!r}: sequence 1 must follow the genesis"
    print(
        f"{chain}: ok, sequences {first['sequence']}-{last['sequence']} "
        f"({len(records)} records), after {start}; head {last['hash']}"
    )
    return None


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    chains: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for line, record in enumerate(read(argv[1]), start=1):
        chains.setdefault(record["tenant_id"], []).append((line, record))
    failures = [why for chain, recs in chains.items() if (why := verify_chain(chain, recs))]
    for why in failures:
        print(f"BROKEN {why}")
    if not chains:
        print("no records")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
