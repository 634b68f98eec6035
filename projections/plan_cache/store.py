"""The plan cache's tables in Postgres, searched through a pgvector HNSW index.

Vectors travel as ``real[]`` (asyncpg's binary array, cast to ``halfvec`` by the
server), so any asyncpg pool works without pgvector's codec and no 384 floats are
printed and parsed as text. Write methods take the projector's open connection: each
change commits together with the projector's position. Lookups may have a pool of
their own (:func:`lookup_pool`) whose connections are not reset on release.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import numpy as np

from domain.events import PlanStep
from projections.migrate import apply_migrations, quote_ident
from projections.plan_cache.fold import StoredPlan


@dataclass(frozen=True)
class Candidate:
    """A live entry visible to the asking tenant, with its cosine similarity."""

    tenant_id: str
    template: str
    slot_names: tuple[str, ...]
    steps: tuple[PlanStep, ...]
    model: str
    source_plan_id: str
    similarity: float
    pattern: str = ""


async def migrate(target: asyncpg.Pool | asyncpg.Connection, schema: str = "public") -> None:
    """Create the plan cache's tables (migrations 0100-0199) in ``schema``."""
    await apply_migrations(target, schema=schema, select=lambda m: 100 <= m.number <= 199)


# The entry's columns but its scope and sharing list (migration 0160), in table order.
_COLUMNS = (
    "tenant_id, template, pattern, slot_names, steps, embedding, model, source_plan_id,"
    " source_event_id, planned_at, expires_at"
)


def to_pgvector(vector: np.ndarray[Any, Any]) -> str:
    """pgvector's text form (``'[0.1,...]'``), for ad hoc SQL and tests."""
    return "[" + ",".join(f"{float(x):.8g}" for x in vector) + "]"


def as_real_array(vector: Any) -> list[float]:
    """A vector as the ``real[]`` parameter the queries cast to ``halfvec``."""
    floats: list[float] = np.asarray(vector, dtype=np.float32).tolist()
    return floats


async def _keep_session(conn: asyncpg.Connection) -> None:
    """A lookup connection's release: nothing to reset (asyncpg still rolls back an
    open transaction). The default reset is a round trip per release."""


async def lookup_pool(dsn: str, *, max_size: int = 2) -> asyncpg.Pool:
    """A pool for :meth:`PgPlanCacheStore.nearest` alone.

    Its one statement calls ``plan_cache_nearest``, whose ``SET`` clauses restore the
    search settings on exit, outside any transaction: it leaves no session state
    behind, so releasing a connection skips asyncpg's reset (``RESET ALL``,
    ``UNLISTEN *``, ...), one round trip per lookup otherwise. Use it for nothing else.
    """
    pool: asyncpg.Pool = await asyncpg.create_pool(
        dsn, min_size=1, max_size=max_size, reset=_keep_session
    )
    return pool


class PgPlanCacheStore:
    """The entries, shares and invalidation watermarks of one schema."""

    def __init__(
        self, pool: asyncpg.Pool, *, schema: str = "public", lookups: asyncpg.Pool | None = None
    ) -> None:
        self.pool = pool
        # Where nearest() runs: a lookup_pool() if given, else the shared pool.
        self.lookups = lookups or pool
        self.schema = schema
        q = quote_ident(schema)
        self.entries = f"{q}.plan_cache_entries"
        self.shares = f"{q}.plan_cache_shares"
        self.invalidations = f"{q}.plan_cache_invalidations"
        self.positions = f"{q}.plan_cache_positions"
        self.nearest_fn = f"{q}.plan_cache_nearest"
        self.scopes_fn = f"{q}.plan_cache_scopes"

    async def nearest(
        self,
        tenant_id: str,
        vector: np.ndarray[Any, Any],
        slot_names: Sequence[str],
        now: datetime,
        *,
        limit: int = 5,
        ef_search: int = 64,
        max_scan_tuples: int = 1000,
        exact: bool = False,
    ) -> list[Candidate]:
        """The ``limit`` live entries nearest to ``vector`` that ``tenant_id`` may use.

        Only entries whose slots are all among ``slot_names`` qualify (an entry may
        have written some of its goal's slots back as values). One round trip: the
        search settings are those of the ``plan_cache_nearest`` function (migration
        0160). ``exact`` forbids the index (a full scan), for measuring its recall.
        """
        rows = await self.lookups.fetch(
            f"SELECT * FROM {self.nearest_fn}($1::real[]::halfvec, $2, $3, $4, $5, $6, $7, $8)",
            as_real_array(vector),
            tenant_id,
            sorted(slot_names),
            now,
            limit,
            ef_search,
            max_scan_tuples,
            exact,
        )
        return [_candidate(r) for r in rows]

    async def put(self, conn: asyncpg.Connection, plan: StoredPlan, vector: Any) -> bool:
        """Store ``plan`` unless invalidated or older than the entry it would replace."""
        blocked = await conn.fetchval(
            f"SELECT max(invalidated_at) FROM {self.invalidations}"
            " WHERE tenant_id = $1 AND template IN ('', $2)",
            plan.tenant_id,
            plan.template,
        )
        if blocked is not None and plan.planned_at <= blocked:
            return False
        # One row per scope that may see the entry (migration 0160), from the latest
        # sharing decision for its template.
        status = await conn.execute(
            f"INSERT INTO {self.entries} AS e (scope, {_COLUMNS}, shared_with)"
            " SELECT s.scope, $1, $2, $11, $3, $4::jsonb, $5::real[]::halfvec,"
            " $6, $7, $8, $9, $10, w.w"
            f" FROM (SELECT coalesce((SELECT shared_with FROM {self.shares}"
            "  WHERE tenant_id = $1 AND template = $2), '{}') AS w) AS w,"
            f" unnest({self.scopes_fn}($1, w.w)) AS s(scope)"
            " ON CONFLICT (scope, tenant_id, template, pattern)"
            " DO UPDATE SET slot_names = EXCLUDED.slot_names,"
            " steps = EXCLUDED.steps, embedding = EXCLUDED.embedding, model = EXCLUDED.model,"
            " source_plan_id = EXCLUDED.source_plan_id,"
            " source_event_id = EXCLUDED.source_event_id, planned_at = EXCLUDED.planned_at,"
            " expires_at = EXCLUDED.expires_at"
            # Newest plan wins whatever order the log is read in, so rebuilds agree.
            " WHERE (EXCLUDED.planned_at, EXCLUDED.source_event_id)"
            " > (e.planned_at, e.source_event_id)",
            plan.tenant_id,
            plan.template,
            list(plan.slot_names),
            json.dumps([_step_json(s) for s in plan.steps]),
            as_real_array(vector),
            plan.model,
            plan.source_plan_id,
            plan.source_event_id,
            plan.planned_at,
            plan.expires_at,
            plan.pattern,
        )
        return int(status.split()[-1]) > 0

    async def forget_plan(self, conn: asyncpg.Connection, tenant_id: str, plan_id: str) -> int:
        """Drop what the cache learned from one plan (its run's data was erased)."""
        status = await conn.execute(
            f"DELETE FROM {self.entries} WHERE tenant_id = $1 AND source_plan_id = $2",
            tenant_id,
            plan_id,
        )
        return int(status.split()[-1])

    async def invalidate(
        self, conn: asyncpg.Connection, tenant_id: str, template: str | None, at: datetime
    ) -> int:
        """Drop the tenant's entries (or one template's) planned at or before ``at``."""
        await conn.execute(
            f"INSERT INTO {self.invalidations} AS i (tenant_id, template, invalidated_at)"
            " VALUES ($1, $2, $3) ON CONFLICT (tenant_id, template) DO UPDATE"
            " SET invalidated_at = greatest(i.invalidated_at, EXCLUDED.invalidated_at)",
            tenant_id,
            template or "",
            at,
        )
        dropped: int = await conn.fetchval(
            f"WITH gone AS (DELETE FROM {self.entries} WHERE tenant_id = $1"
            " AND ($2::text IS NULL OR template = $2) AND planned_at <= $3"
            " RETURNING template, pattern)"
            " SELECT count(DISTINCT (template, pattern)) FROM gone",
            tenant_id,
            template,
            at,
        )
        return dropped

    async def share(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        template: str,
        shared_with: Sequence[str],
        at: datetime,
        event_id: str,
    ) -> None:
        """Record who may reuse the tenant's plan for ``template`` (latest decision wins)."""
        updated = await conn.fetchval(
            f"INSERT INTO {self.shares} AS s (tenant_id, template, shared_with, shared_at,"
            " event_id) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, template)"
            " DO UPDATE SET shared_with = EXCLUDED.shared_with,"
            " shared_at = EXCLUDED.shared_at, event_id = EXCLUDED.event_id"
            " WHERE (EXCLUDED.shared_at, EXCLUDED.event_id) > (s.shared_at, s.event_id)"
            " RETURNING shared_with",
            tenant_id,
            template,
            sorted(set(shared_with)),
            at,
            event_id,
        )
        if updated is not None:
            # Move the template's entries to the scopes the decision names.
            await conn.execute(
                f"WITH old AS (DELETE FROM {self.entries}"
                " WHERE tenant_id = $1 AND template = $2 RETURNING *),"
                " one AS (SELECT DISTINCT ON (pattern) * FROM old ORDER BY pattern)"
                f" INSERT INTO {self.entries} (scope, {_COLUMNS}, shared_with)"
                f" SELECT s.scope, {_COLUMNS}, $3 FROM one,"
                f" unnest({self.scopes_fn}($1, $3)) AS s(scope)",
                tenant_id,
                template,
                updated,
            )

    async def purge_expired(self, now: datetime) -> int:
        """Delete entries past their expiry (lookups already skip them)."""
        purged: int = await self.pool.fetchval(
            f"WITH gone AS (DELETE FROM {self.entries} WHERE expires_at <= $1"
            " RETURNING tenant_id, template, pattern)"
            " SELECT count(DISTINCT (tenant_id, template, pattern)) FROM gone",
            now,
        )
        return purged

    async def snapshot(self) -> list[dict[str, Any]]:
        """Every entry, ordered, with its embedding as text (to compare rebuilds)."""
        rows = await self.pool.fetch(
            # An entry shared by name is stored once per scope: list it once.
            "SELECT DISTINCT ON (tenant_id, template, pattern)"
            " tenant_id, template, pattern, slot_names, steps::text AS steps,"
            " embedding::text AS embedding, model, source_plan_id, source_event_id,"
            f" planned_at, expires_at, shared_with FROM {self.entries}"
            " ORDER BY tenant_id, template, pattern"
        )
        return [dict(r) for r in rows]

    async def reset(self, projector: str) -> None:
        """Empty the cache and forget the projector's position, to replay the log."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(f"TRUNCATE {self.entries}, {self.shares}, {self.invalidations}")
            await conn.execute(f"DELETE FROM {self.positions} WHERE projector = $1", projector)


def _step_json(step: PlanStep) -> dict[str, Any]:
    return {
        "step_id": step.step_id,
        "tool": step.tool,
        "arguments_json": step.arguments_json,
        "depends_on": list(step.depends_on),
        "risk": step.risk,
        "compensation": step.compensation,
        "timeout_s": step.timeout_s,
        "max_attempts": step.max_attempts,
    }


def _candidate(row: asyncpg.Record) -> Candidate:
    steps = tuple(
        PlanStep(**{**s, "depends_on": tuple(s["depends_on"])}) for s in json.loads(row["steps"])
    )
    return Candidate(
        tenant_id=row["tenant_id"],
        template=row["template"],
        slot_names=tuple(row["slot_names"]),
        steps=steps,
        model=row["model"],
        source_plan_id=row["source_plan_id"],
        similarity=float(row["similarity"]),
        pattern=row["pattern"],
    )
