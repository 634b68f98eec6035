"""The plan cache's handler: folds plans, invalidations and shares into pgvector.

``plan_generated`` (runs topic) and ``plan_cache_invalidated`` / ``plan_template_shared``
(control topic) reach it through the one consumer (:mod:`streams.consumer`), as the
``plan-cache`` subscription of :mod:`streams.topology`. A partition's batch is embedded
first, outside any transaction, then applied in one transaction together with the new
position (``plan_cache_positions``), so a redelivery, a restart or a second instance
changes nothing twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta

import asyncpg

from domain import ids
from domain.events import (
    Event,
    PlanCacheInvalidated,
    PlanGenerated,
    PlanTemplateShared,
    SubjectErased,
)
from projections.plan_cache.embedder import Embedder
from projections.plan_cache.fold import StoredPlan, stored_plan
from projections.plan_cache.store import PgPlanCacheStore
from streams.consumer import Record
from streams.positions import PG_TRANSIENT, PgPositions

Partition = tuple[str, int]


class PlanCacheFolder:
    """The plan cache's :class:`~streams.consumer.Handler`; ``name`` keys its positions."""

    transient = PG_TRANSIENT

    def __init__(
        self,
        store: PgPlanCacheStore,
        embedder: Embedder,
        *,
        ttl_s: float,
        name: str = "plan-cache",
    ) -> None:
        self.name = name
        self.store = store
        self._embedder = embedder
        self._ttl = timedelta(seconds=ttl_s)
        self.positions = PgPositions(name, store.positions)

    async def resume_at(self, partitions: Sequence[Partition]) -> Mapping[Partition, int]:
        return await self.positions.load(self.store.pool)

    async def apply(self, topic: str, partition: int, records: Sequence[Record]) -> None:
        """Apply one partition's records (in offset order) with the position, atomically."""
        plans = {
            r.offset: plan
            for r in records
            if isinstance(r.event, PlanGenerated) and (plan := stored_plan(r.event, self._ttl))
        }
        templates = [p.template for p in plans.values()]
        vectors = dict(zip(plans, await self._embedder.embed(templates), strict=True))
        async with self.store.pool.acquire() as conn, conn.transaction():
            start = await self.positions.lock(conn, topic, partition)
            for r in records:
                if r.offset >= start and r.event is not None:
                    await self._fold(conn, r.event, plans.get(r.offset), vectors.get(r.offset))
            await self.positions.advance(conn, topic, partition, records[-1].offset + 1)

    async def _fold(
        self, conn: asyncpg.Connection, event: Event, plan: StoredPlan | None, vector: object
    ) -> None:
        env = event.envelope
        if plan is not None:
            await self.store.put(conn, plan, vector)
        elif isinstance(event, PlanCacheInvalidated):
            template = event.template if event.scope == "template" else None
            if event.scope == "template" and not template:
                return  # a template-scoped invalidation naming no template drops nothing
            await self.store.invalidate(conn, env.tenant_id, template, env.occurred_at)
        elif isinstance(event, SubjectErased):  # the run's plan (sagas derive its id)
            await self.store.forget_plan(conn, env.tenant_id, ids.derive_id("plan", env.run_id))
        elif isinstance(event, PlanTemplateShared):
            await self.store.share(
                conn,
                env.tenant_id,
                event.template,
                event.shared_with,
                env.occurred_at,
                env.event_id,
            )
