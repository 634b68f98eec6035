"""The semantic :class:`~domain.plan_cache.PlanCache`: templates, embeddings, pgvector.

Construct it with :func:`semantic_plan_cache` (the worker's factory signature) or
:func:`build_plan_cache` (own pool). The cache only reads; the
:class:`~projections.plan_cache.projector.PlanCacheProjector` fills it from the log.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import asyncpg

from domain.plan_cache import CachedPlan, CacheLookup
from domain.templates import GoalTemplate, extract, reuse
from omnihub.lazy import Lazy
from omnihub.settings import Settings
from projections.plan_cache.embedder import Embedder, SentenceTransformerEmbedder
from projections.plan_cache.onnx_embedder import OnnxEmbedder
from projections.plan_cache.store import Candidate, PgPlanCacheStore, lookup_pool, migrate

log = logging.getLogger(__name__)

# A cache that cannot answer is a miss: the run is planned by the model instead.
UNAVAILABLE = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


class SemanticPlanCache:
    """Serves a tenant's (or a shared) plan for the same request with other values.

    The index finds the nearest templates; :func:`domain.templates.match` decides from
    the goal's structure whether one of them serves it.
    """

    def __init__(
        self,
        store: Callable[[], Awaitable[PgPlanCacheStore]],
        embedder: Embedder,
        *,
        threshold: float = 0.7,
        candidates: int = 5,
        ef_search: int = 64,
        max_scan_tuples: int = 1000,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._store = store
        self._embedder = embedder
        self._threshold = threshold
        self._candidates = candidates
        self._ef_search = ef_search
        self._max_scan_tuples = max_scan_tuples
        self._clock = clock
        self._on_close = on_close

    async def close(self) -> None:
        """Close what the cache opened for itself (its lookup pool, if any)."""
        if self._on_close is not None:
            await self._on_close()

    async def lookup(self, tenant_id: str, goal: str) -> CacheLookup:
        """The filled plan of the most similar usable entry, or a miss with the template."""
        template = extract(goal)
        miss = CacheLookup(hit=None, template=template.text, slots=dict(template.slots))
        try:
            found = await self._nearest(tenant_id, template)
        except UNAVAILABLE as exc:
            log.warning("plan cache unavailable, planning without it: %s", exc)
            return miss
        # Most similar first; on a tie the tenant's own plan before a shared one.
        for c in sorted(found, key=lambda c: (-c.similarity, c.tenant_id != tenant_id)):
            steps = reuse(
                c.pattern or c.template,
                c.slot_names,
                c.steps,
                template,
                c.similarity,
                self._threshold,
            )
            if steps is not None:
                similarity = round(c.similarity, 4)
                plan = CachedPlan(steps, similarity, c.template, c.source_plan_id, c.model)
                return CacheLookup(plan, template.text, dict(template.slots))
        return miss

    async def _nearest(self, tenant_id: str, template: GoalTemplate) -> list[Candidate]:
        store = await self._store()
        (vector,) = await self._embedder.embed([template.text])
        return await store.nearest(
            tenant_id,
            vector,
            template.slot_names,
            self._clock(),
            limit=self._candidates,
            ef_search=self._ef_search,
            max_scan_tuples=self._max_scan_tuples,
        )


def fixed(store: PgPlanCacheStore) -> Callable[[], Awaitable[PgPlanCacheStore]]:
    """A store source for a store built beforehand (tests, benchmarks, CLI)."""

    async def source() -> PgPlanCacheStore:
        return store

    return source


def embedder_for(settings: Settings) -> OnnxEmbedder | SentenceTransformerEmbedder:
    """The embedder ``settings`` choose: ONNX Runtime by default, the reference otherwise.

    Both run the same weights and agree to cosine >= 0.999, so entries embedded by one
    are found by the other.
    """
    if settings.plan_cache_embedder == "onnx":
        return OnnxEmbedder(settings.plan_cache_model_path)
    return SentenceTransformerEmbedder(settings.plan_cache_model_path)


def semantic_plan_cache(settings: Settings, postgres: Lazy[asyncpg.Pool]) -> SemanticPlanCache:
    """The semantic cache on the worker's lazy pool (``PLAN_CACHES["semantic"]``).

    The store's tables are migrated on first use; the model loads on the first lookup
    (call ``embedder.warm_up()`` to load it at start instead). Lookups run on a small
    pool of their own (:func:`~projections.plan_cache.store.lookup_pool`: no reset
    round trip per lookup), built with the store and closed by
    :meth:`SemanticPlanCache.close`.
    """
    migrated: list[PgPlanCacheStore] = []
    lookups = Lazy(lambda: lookup_pool(settings.postgres_dsn), _close)

    async def store() -> PgPlanCacheStore:
        if not migrated:
            pool = await postgres.get()
            await migrate(pool, settings.projections_schema)
            schema = settings.projections_schema
            own = await lookups.get()
            migrated.append(PgPlanCacheStore(pool, schema=schema, lookups=own))
        return migrated[0]

    return SemanticPlanCache(
        store,
        embedder_for(settings),
        threshold=settings.plan_cache_threshold,
        candidates=settings.plan_cache_candidates,
        ef_search=settings.plan_cache_ef_search,
        max_scan_tuples=settings.plan_cache_max_scan_tuples,
        on_close=lookups.close,
    )


async def _close(pool: asyncpg.Pool) -> None:
    await pool.close()


async def build_plan_cache(settings: Settings) -> tuple[SemanticPlanCache, asyncpg.Pool]:
    """The semantic cache with a pool of its own, returned for the caller to close."""
    pool = await asyncpg.create_pool(settings.postgres_dsn, min_size=1, max_size=5)

    async def existing() -> asyncpg.Pool:
        return pool

    return semantic_plan_cache(settings, Lazy(existing)), pool
