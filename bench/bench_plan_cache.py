"""Plan cache benchmark: lookup latency, ANN recall, embedding throughput, labelled set.

Runs against the Postgres of the local stack (``OMNIHUB_POSTGRES_DSN``) in a scratch
schema it drops afterwards::

    .venv/bin/python bench/bench_plan_cache.py --sizes 10000,100000

Per size it loads that many cache entries, builds the HNSW index, and times
``PgPlanCacheStore.nearest`` (the lookup's database part: tenant, slot and expiry
filters, top 5) for real query embeddings; the embedding is timed separately. Recall is
the overlap of the index's top 5 with an exact scan's top 5 on the same data. Up to
``--embed-max`` entries are real template embeddings; beyond that, entries are noisy
copies of them (cosine ~0.9 to their source), so 100k entries load in seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import re
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import numpy as np
from pgvector.asyncpg import register_vector

from omnihub.settings import Settings
from projections.migrate import quote_ident
from projections.plan_cache.embedder import SentenceTransformerEmbedder
from projections.plan_cache.evaluation import evaluate, load_pairs
from projections.plan_cache.store import PgPlanCacheStore, migrate, to_pgvector

PAIRS = Path(__file__).parents[1] / "tests" / "fixtures" / "goal_pairs.jsonl"
VERBS = "book cancel refund track send summarize translate archive approve reject schedule"
OBJECTS = "flight hotel order invoice report ticket meeting subscription payment shipment"
QUALIFIERS = ["", "weekly", "urgent", "monthly", "the latest", "all pending", "my"]
TAILS = ["to {DESTINATION}", "for {ORDER_ID}", "to {EMAIL}", "at {URL}", "on {DATE}", ""]
SLOTS = {
    "to {DESTINATION}": ["DESTINATION"],
    "for {ORDER_ID}": ["ORDER_ID"],
    "to {EMAIL}": ["EMAIL"],
    "at {URL}": ["URL"],
    "on {DATE}": ["DATE"],
    "": [],
}
TENANTS = 20


def templates(n: int) -> list[tuple[str, list[str]]]:
    """``n`` distinct, plausible templates with their slot names."""
    combos = itertools.product(VERBS.split(), QUALIFIERS, OBJECTS.split(), TAILS)
    out = []
    for i, (verb, qual, obj, tail) in enumerate(itertools.cycle(combos)):
        if len(out) == n:
            return out
        extra = f" batch {i // 4620}" if i >= 4620 else ""
        text = " ".join(w for w in (verb.capitalize(), qual, obj, tail) if w) + extra
        out.append((text, SLOTS[tail]))
    return out


def noisy_copies(base: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    picks = base[rng.integers(0, len(base), n)]
    noisy = picks + rng.normal(0, 0.45 / np.sqrt(base.shape[1]), picks.shape).astype(np.float32)
    return noisy / np.linalg.norm(noisy, axis=1, keepdims=True)


async def load(dsn: str, store: PgPlanCacheStore, rows: list[tuple]) -> float:
    # Its own connection: pgvector's binary codec must not leak into the store's pool.
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"TRUNCATE {store.entries}")
        await conn.execute(f"DROP INDEX IF EXISTS {quote_ident(store.schema)}.pc_bench_hnsw")
        await conn.execute(
            f"DROP INDEX IF EXISTS {quote_ident(store.schema)}.plan_cache_entries_embedding_hnsw"
        )
        await register_vector(conn)  # binary COPY needs pgvector's codec
        await conn.copy_records_to_table(
            "plan_cache_entries",
            schema_name=store.schema,
            records=rows,
            columns=[
                "tenant_id",
                "template",
                "slot_names",
                "steps",
                "embedding",
                "model",
                "source_plan_id",
                "source_event_id",
                "planned_at",
                "expires_at",
            ],
        )
        started = time.perf_counter()
        await conn.execute("SET maintenance_work_mem = '1GB'")
        await conn.execute(
            f"CREATE INDEX pc_bench_hnsw ON {store.entries} USING hnsw "
            "(embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
        )
        await conn.execute(f"ANALYZE {store.entries}")
        return time.perf_counter() - started
    finally:
        await conn.close()


def entry_rows(texts: list[tuple[str, list[str]]], vectors: np.ndarray) -> list[tuple]:
    now = datetime.now(UTC)
    steps = json.dumps(
        [
            {
                "step_id": "s1",
                "tool": "transform",
                "arguments_json": "{}",
                "depends_on": [],
                "risk": 0.0,
                "compensation": None,
                "timeout_s": 30.0,
                "max_attempts": 3,
            }
        ]
    )
    return [
        (
            f"tenant-{i % TENANTS}",
            f"{text} #{i}",
            sorted(slots),
            steps,
            v,
            "bench",
            f"p{i}",
            f"e{i}",
            now,
            now + timedelta(hours=24),
        )
        for i, ((text, slots), v) in enumerate(zip(texts, vectors, strict=True))
    ]


async def measure(
    store: PgPlanCacheStore, queries: list[tuple[str, list[str], np.ndarray]], ef_search: int
) -> dict[str, float]:
    now, latencies, overlap = datetime.now(UTC), [], []
    for tenant, slots, vector in queries:
        started = time.perf_counter()
        ann = await store.nearest(tenant, vector, slots, now, limit=5, ef_search=ef_search)
        latencies.append((time.perf_counter() - started) * 1000)
        exact = await store.nearest(tenant, vector, slots, now, limit=5, exact=True)
        want = {c.template for c in exact}
        overlap.append(len(want & {c.template for c in ann}) / max(len(want), 1))
    q = statistics.quantiles(latencies, n=100)
    return {
        "p50_ms": round(q[49], 2),
        "p95_ms": round(q[94], 2),
        "recall_at_5": round(float(np.mean(overlap)), 4),
    }


async def unfiltered(
    pool: asyncpg.Pool, store: PgPlanCacheStore, probes: np.ndarray, ef_search: int
) -> dict[str, float]:
    """The bare index: top 5 over all entries, HNSW against an exact scan."""
    sql = f"SELECT template FROM {store.entries} ORDER BY embedding <=> $1::vector LIMIT 5"
    latencies, overlap = [], []
    async with pool.acquire() as conn:
        for vector in probes:
            text = to_pgvector(vector)
            async with conn.transaction():
                await conn.execute(f"SET LOCAL hnsw.ef_search = {ef_search}")
                started = time.perf_counter()
                ann = {r[0] for r in await conn.fetch(sql, text)}
                latencies.append((time.perf_counter() - started) * 1000)
            async with conn.transaction():
                await conn.execute("SET LOCAL enable_indexscan = off")
                exact = {r[0] for r in await conn.fetch(sql, text)}
            overlap.append(len(ann & exact) / 5)
    q = statistics.quantiles(latencies, n=100)
    return {
        "p50_ms": round(q[49], 2),
        "p95_ms": round(q[94], 2),
        "recall_at_5": round(float(np.mean(overlap)), 4),
    }


async def scans(pool: asyncpg.Pool, store: PgPlanCacheStore, probe: np.ndarray) -> list[str]:
    """The index scans Postgres picks for a filtered lookup (is HNSW used?)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL hnsw.iterative_scan = strict_order")
        plan = await conn.fetchval(
            f"EXPLAIN (FORMAT JSON) SELECT template FROM {store.entries}"
            " WHERE (tenant_id = 'tenant-1' OR shared_with && ARRAY['tenant-1', '*'])"
            " AND slot_names = '{DESTINATION}' AND expires_at > now()"
            " ORDER BY embedding <=> $1::vector LIMIT 5",
            to_pgvector(probe),
        )
    return sorted(set(re.findall(r'"Index Name": "([^"]+)"', plan))) or ["seq scan"]


async def throughput(embedder: SentenceTransformerEmbedder) -> dict[str, float]:
    goals = [f"{t} number {i}" for i, (t, _) in enumerate(templates(2000))]
    embedder.encode(goals[:64])  # warm up
    started = time.perf_counter()
    embedder.encode(goals)
    batched = len(goals) / (time.perf_counter() - started)
    singles = []
    for goal in goals[:100]:
        started = time.perf_counter()
        embedder.encode([goal])
        singles.append((time.perf_counter() - started) * 1000)
    return {
        "batched_goals_per_s": round(batched, 1),
        "single_goal_p50_ms": round(statistics.median(singles), 2),
    }


async def main(args: argparse.Namespace) -> dict[str, object]:
    embedder = SentenceTransformerEmbedder()
    results: dict[str, object] = {"embedding": await throughput(embedder)}
    report = await evaluate(load_pairs(PAIRS), embedder, args.threshold)
    results["labelled_set"] = {
        "pairs": len(report.outcomes),
        "hit_rate": round(report.hit_rate, 4),
        "precision": round(report.precision, 4),
        "recall": round(report.recall, 4),
    }
    rng = np.random.default_rng(7)
    sizes = [int(s) for s in args.sizes.split(",")]
    texts = templates(max(sizes))
    started = time.perf_counter()
    real = embedder.encode([t for t, _ in texts[: args.embed_max]])
    results["embedding"]["real_entries_embedded"] = len(real)  # type: ignore[index]
    results["embedding"]["entries_per_s"] = round(len(real) / (time.perf_counter() - started), 1)  # type: ignore[index]
    vectors = np.concatenate([real, noisy_copies(real, max(sizes) - len(real), rng)])
    probe = embedder.encode([f"Please {t.lower()}" for t, _ in texts[: args.queries]])
    pool = await asyncpg.create_pool(args.dsn, min_size=1, max_size=2)
    schema = f"bench_pc_{uuid.uuid4().hex[:8]}"
    try:
        await migrate(pool, schema)
        store = PgPlanCacheStore(pool, schema=schema)
        for size in sizes:
            build_s = await load(args.dsn, store, entry_rows(texts[:size], vectors[:size]))
            queries = [(f"tenant-{i % TENANTS}", texts[i][1], probe[i]) for i in range(len(probe))]
            results[f"index_only_{size}"] = await unfiltered(pool, store, probe, args.ef_search)
            results[f"lookup_{size}"] = {
                "filtered_plan_uses": await scans(pool, store, probe[0]),
                "entries": size,
                "index_build_s": round(build_s, 1),
                **await measure(store, queries, args.ef_search),
            }
            print(
                json.dumps({k: results[k] for k in (f"lookup_{size}", f"index_only_{size}")}),
                flush=True,
            )
    finally:
        await pool.execute(f"DROP SCHEMA {quote_ident(schema)} CASCADE")
        await pool.close()
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=Settings().postgres_dsn)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--embed-max", type=int, default=20000)
    parser.add_argument("--ef-search", type=int, default=Settings().plan_cache_ef_search)
    parser.add_argument("--threshold", type=float, default=Settings().plan_cache_threshold)
    print(json.dumps(asyncio.run(main(parser.parse_args())), indent=2))
