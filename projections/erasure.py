"""Overwriting what the read models hold of runs whose data key was erased.

The projector folds ``subject_erased`` like any run event (the run's goal and outcome
read as erased); this writes the rest in the same transaction: each timeline row's
personal payload fields and summary, the run's approvals, and the approval decisions in
the audit log, exactly as a replay with the key gone would have stored them; and the
records the saga's ``pg_record`` tool wrote for the run, where that table exists.
The audit log keeps an approval's reason sealed, as the chain hashed it (the audit API
opens it, to ``[erased]`` once the key is gone): only rows projected before that, which
hold it in the clear, are overwritten here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache

import asyncpg

import schemas
from domain.privacy import ERASED, erase_json, personal_paths
from domain.timeline import erased_summary
from streams.schema_registry import SchemaRegistry


@cache
def personal_names() -> frozenset[str]:
    """The name of every field the schemas mark personal."""
    registry = SchemaRegistry.from_dir(schemas.directory())
    return frozenset(
        path[-1] for s in registry.all() for path in personal_paths(s.raw) if path[-1] != "*"
    )


_APPROVALS = (
    "UPDATE approvals SET"
    " goal = CASE WHEN goal = '' THEN goal ELSE $2 END,"
    " arguments_json = CASE WHEN arguments_json = '' THEN arguments_json ELSE $2 END,"
    " inputs_json = CASE WHEN inputs_json = '' THEN inputs_json ELSE $2 END,"
    " reason = CASE WHEN reason IS NULL OR reason = '' THEN reason ELSE $2 END"
    " WHERE run_id = ANY($1::text[])"
)


async def erase_runs(conn: asyncpg.Connection, run_ids: Sequence[str]) -> None:
    """Overwrite the personal fields stored for ``run_ids`` (inside the caller's
    transaction, with the search path on the projection's schema)."""
    names = personal_names()
    runs = sorted(set(run_ids))
    rows = await conn.fetch(
        "SELECT event_id, event_type, summary, payload FROM run_events"
        " WHERE run_id = ANY($1::text[])",
        runs,
    )
    await conn.executemany(
        "UPDATE run_events SET summary = $2, payload = $3::jsonb WHERE event_id = $1",
        [
            (
                r["event_id"],
                erased_summary(r["event_type"], r["summary"]),
                json.dumps(erase_json(json.loads(r["payload"]), names), sort_keys=True),
            )
            for r in rows
        ],
    )
    await conn.execute(_APPROVALS, runs, ERASED)
    audits = await conn.fetch(
        "SELECT event_id, details FROM audit_log WHERE details->>'run_id' = ANY($1::text[])",
        runs,
    )
    await conn.executemany(
        "UPDATE audit_log SET details = $2::jsonb WHERE event_id = $1",
        [
            (a["event_id"], json.dumps(erase_json(json.loads(a["details"]), names), sort_keys=True))
            for a in audits
        ],
    )
    # The saga's tool table lives beside the projections (the worker creates it).
    if await conn.fetchval("SELECT to_regclass('saga_tool_records') IS NOT NULL"):
        await conn.execute(
            "UPDATE saga_tool_records SET record = to_jsonb($2::text)"
            " WHERE run_id = ANY($1::text[])",
            runs,
            ERASED,
        )
