"""Plan cache benchmark: matching on labelled pairs, a Zipf stream, lookup latency.

Runs against the Postgres of the local stack (``OMNIHUB_POSTGRES_DSN``) in a scratch
schema it drops afterwards::

    .venv/bin/python bench/bench_plan_cache.py            # 10k and 100k entries
    .venv/bin/python bench/bench_plan_cache.py --quick    # a couple of minutes

It prints, each figure beside its baseline from the same run:

- precision and recall on the dev and the held-out test split, per kind;
- a 10,000-goal stream drawn with Zipf over templates and slot values: hit rate and
  model calls saved, beside the hit rate of a cache keyed by the goal's exact text;
- embedding one goal with ONNX Runtime and with sentence-transformers (the reference),
  side by side, and how closely they agree;
- per size, a whole lookup (``SemanticPlanCache.lookup``: extract, embed, filtered
  HNSW top 5, match) with its database part and the bare index (top 5, no filter)
  beside it, and the index's recall against an exact scan.

Up to ``--embed-max`` entries are real template embeddings; beyond that, entries are
noisy copies of them (cosine ~0.9 to their source), so 100k entries load in seconds.
The last line is the whole result as one JSON object.
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
from typing import Any

import asyncpg
import numpy as np
from pgvector.asyncpg import register_vector

from domain.templates import extract
from omnihub.settings import Settings
from projections.migrate import quote_ident
from projections.plan_cache.adapter import SemanticPlanCache, fixed
from projections.plan_cache.embedder import SentenceTransformerEmbedder
from projections.plan_cache.evaluation import SPLITS, evaluate, load_pairs
from projections.plan_cache.onnx_embedder import OnnxEmbedder
from projections.plan_cache.store import PgPlanCacheStore, migrate, to_pgvector
from projections.plan_cache.stream import draw, simulate

Embedder = OnnxEmbedder | SentenceTransformerEmbedder
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
                "pattern",
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
            f"{text} #{i}",
        )
        for i, ((text, slots), v) in enumerate(zip(texts, vectors, strict=True))
    ]


def _quantiles(latencies: list[float]) -> dict[str, float]:
    q = statistics.quantiles(latencies, n=100)
    return {"p50_ms": round(q[49], 2), "p95_ms": round(q[94], 2)}


async def measure(
    store: PgPlanCacheStore, queries: list[tuple[str, list[str], np.ndarray]], ef_search: int
) -> dict[str, float]:
    """The lookup's database part, then (apart, so its scans do not evict the index's
    pages between timed queries) an exact scan for the index's recall."""
    now, latencies, found = datetime.now(UTC), [], []
    for tenant, slots, vector in queries:
        started = time.perf_counter()
        ann = await store.nearest(tenant, vector, slots, now, limit=5, ef_search=ef_search)
        latencies.append((time.perf_counter() - started) * 1000)
        found.append({c.template for c in ann})
    overlap = []
    for (tenant, slots, vector), ann_templates in zip(queries, found, strict=True):
        exact = await store.nearest(tenant, vector, slots, now, limit=5, exact=True)
        want = {c.template for c in exact}
        overlap.append(len(want & ann_templates) / max(len(want), 1))
    return {**_quantiles(latencies), "recall_at_5": round(float(np.mean(overlap)), 4)}


async def unfiltered(
    pool: asyncpg.Pool, store: PgPlanCacheStore, probes: np.ndarray, ef_search: int
) -> dict[str, float]:
    """The bare index: top 5 over all entries, HNSW against an exact scan."""
    sql = f"SELECT template FROM {store.entries} ORDER BY embedding <=> $1::vector LIMIT 5"
    latencies, found, overlap = [], [], []
    async with pool.acquire() as conn:
        for vector in probes:
            async with conn.transaction():
                await conn.execute(f"SET LOCAL hnsw.ef_search = {ef_search}")
                started = time.perf_counter()
                found.append({r[0] for r in await conn.fetch(sql, to_pgvector(vector))})
                latencies.append((time.perf_counter() - started) * 1000)
        for vector, ann in zip(probes, found, strict=True):
            async with conn.transaction():
                await conn.execute("SET LOCAL enable_indexscan = off")
                exact = {r[0] for r in await conn.fetch(sql, to_pgvector(vector))}
            overlap.append(len(ann & exact) / 5)
    return {**_quantiles(latencies), "recall_at_5": round(float(np.mean(overlap)), 4)}


async def scans(pool: asyncpg.Pool, store: PgPlanCacheStore, probe: np.ndarray) -> list[str]:
    """The index scans Postgres picks for a filtered lookup (is HNSW used?)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL hnsw.iterative_scan = strict_order")
        plan = await conn.fetchval(
            f"EXPLAIN (FORMAT JSON) SELECT template FROM {store.entries}"
            " WHERE (tenant_id = 'tenant-1' OR shared_with && ARRAY['tenant-1', '*'])"
            " AND slot_names <@ '{DESTINATION}' AND expires_at > now()"
            " ORDER BY embedding <=> $1::vector LIMIT 5",
            to_pgvector(probe),
        )
    return sorted(set(re.findall(r'"Index Name": "([^"]+)"', plan))) or ["seq scan"]


def embedding(onnx: OnnxEmbedder, reference: SentenceTransformerEmbedder, n: int) -> dict:
    """One goal at a time and batched, ONNX Runtime beside sentence-transformers."""
    goals = [f"{t} number {i}" for i, (t, _) in enumerate(templates(max(n, 64)))]
    out: dict[str, Any] = {}
    for name, model in (("onnx", onnx), ("sentence_transformers", reference)):
        model.encode(goals[:64])  # warm up
        singles = []
        for goal in goals[:n]:
            started = time.perf_counter()
            model.encode([goal])
            singles.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        model.encode(goals[:n])
        out[name] = {
            "single_goal": _quantiles(singles),
            "batched_goals_per_s": round(n / (time.perf_counter() - started), 1),
        }
    cosine = (onnx.encode(goals[:n]) * reference.encode(goals[:n])).sum(axis=1)
    out["agreement_min_cosine"] = round(float(cosine.min()), 6)
    return out


async def labelled(embedder: Embedder, threshold: float) -> dict[str, Any]:
    out = {}
    for split, path in SPLITS.items():
        report = await evaluate(load_pairs(path), embedder, threshold)
        out[split] = {**report.summary(), "by_kind": report.by_kind()}
    return out


async def lookups(
    store: PgPlanCacheStore, goals: list[tuple[str, str]], threshold: float, ef_search: int
) -> dict[str, Any]:
    """Whole lookups (extract, embed, filtered HNSW, match), each goal's template new."""
    cache = SemanticPlanCache(
        fixed(store), OnnxEmbedder(), threshold=threshold, ef_search=ef_search
    )
    await cache.lookup("tenant-0", "warm up the model and the pool")
    out: dict[str, Any] = {}
    # First pass: every template is new, so every lookup embeds. Second pass: the same
    # goals again, their templates in the embedder's LRU (a repeated template).
    for name in ("new_template", "seen_template"):
        latencies, hits = [], 0
        for tenant, goal in goals:
            started = time.perf_counter()
            found = await cache.lookup(tenant, goal)
            latencies.append((time.perf_counter() - started) * 1000)
            hits += found.hit is not None
        out[name] = {**_quantiles(latencies), "queries": len(goals), "hits": hits}
    return out


def query_goals(texts: list[tuple[str, list[str]]], n: int) -> list[tuple[str, str]]:
    """Goals whose templates are all different (so no embedding is a cache hit)."""
    values = {
        "{DESTINATION}": "Lisbon",
        "{ORDER_ID}": "order 4411",
        "{EMAIL}": "kim@example.com",
        "{URL}": "https://docs.example.com/a.pdf",
        "{DATE}": "2027-01-15",
    }
    out = []
    for i in range(n):
        text = texts[i * 13 % min(len(texts), 4620)][0]
        for slot, value in values.items():
            text = text.replace(slot, value)
        out.append((f"tenant-{i % TENANTS}", f"Please {text[0].lower()}{text[1:]}"))
    return out


async def main(args: argparse.Namespace) -> dict[str, object]:
    onnx, reference = OnnxEmbedder(), SentenceTransformerEmbedder()
    results: dict[str, Any] = {"quick": args.quick}
    results["labelled"] = await labelled(onnx, args.threshold)
    for split in ("dev", "test"):
        row = {k: v for k, v in results["labelled"][split].items() if k != "by_kind"}
        print(f"labelled {split}: {json.dumps(row)}", flush=True)
        for kind, figures in results["labelled"][split]["by_kind"].items():
            print(f"  {kind}: {json.dumps(figures)}", flush=True)
    goals = draw(args.stream, families=args.families, s=args.zipf_s)
    started = time.perf_counter()
    results["stream"] = (await simulate(onnx, goals, threshold=args.threshold)).summary()
    results["stream"].update(families=args.families, zipf_s=args.zipf_s)
    results["stream"]["seconds"] = round(time.perf_counter() - started, 1)
    print(f"stream: {json.dumps(results['stream'])}", flush=True)
    results["embedding"] = embedding(onnx, reference, args.embed_n)
    print(f"embedding: {json.dumps(results['embedding'])}", flush=True)
    rng = np.random.default_rng(7)
    sizes = [int(s) for s in args.sizes.split(",")]
    texts = templates(max(sizes))
    real = onnx.encode([t for t, _ in texts[: args.embed_max]])
    vectors = np.concatenate([real, noisy_copies(real, max(sizes) - len(real), rng)])
    asked = query_goals(texts, args.queries)
    probe = onnx.encode([g for _, g in asked])
    pool = await asyncpg.create_pool(args.dsn, min_size=1, max_size=2)
    schema = f"bench_pc_{uuid.uuid4().hex[:8]}"
    try:
        await migrate(pool, schema)
        store = PgPlanCacheStore(pool, schema=schema)
        for size in sizes:
            results.update(await one_size(args, store, pool, texts, vectors, probe, asked, size))
    finally:
        await pool.execute(f"DROP SCHEMA {quote_ident(schema)} CASCADE")
        await pool.close()
    return results


async def one_size(
    args: argparse.Namespace,
    store: PgPlanCacheStore,
    pool: asyncpg.Pool,
    texts: list[tuple[str, list[str]]],
    vectors: np.ndarray,
    probe: np.ndarray,
    asked: list[tuple[str, str]],
    size: int,
) -> dict[str, Any]:
    build_s = await load(args.dsn, store, entry_rows(texts[:size], vectors[:size]))
    slots = [sorted(extract(goal).slot_names) for _, goal in asked]
    queries = [(t, s, v) for (t, _), s, v in zip(asked, slots, probe, strict=True)]
    out = {
        f"lookup_{size}": {
            "entries": size,
            "index_build_s": round(build_s, 1),
            "filtered_plan_uses": await scans(pool, store, probe[0]),
            "whole_lookup_with_embedding": await lookups(
                store, asked, args.threshold, args.ef_search
            ),
            "database_part": await measure(store, queries, args.ef_search),
            "bare_index": await unfiltered(pool, store, probe, args.ef_search),
        }
    }
    print(f"lookup at {size}: {json.dumps(out[f'lookup_{size}'])}", flush=True)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=Settings().postgres_dsn)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, a few minutes")
    parser.add_argument("--sizes", default=None, help="entries, comma separated")
    parser.add_argument("--queries", type=int, default=None)
    parser.add_argument("--embed-max", type=int, default=None)
    parser.add_argument("--embed-n", type=int, default=None, help="goals timed per embedder")
    parser.add_argument("--stream", type=int, default=10_000, help="goals in the stream")
    parser.add_argument("--families", type=int, default=2000, help="templates in the stream")
    parser.add_argument("--zipf-s", type=float, default=1.0)
    parser.add_argument("--ef-search", type=int, default=Settings().plan_cache_ef_search)
    parser.add_argument("--threshold", type=float, default=Settings().plan_cache_threshold)
    ns = parser.parse_args()
    quick = {"sizes": "20000", "queries": 100, "embed_max": 5000, "embed_n": 100}
    full = {"sizes": "10000,100000", "queries": 300, "embed_max": 20000, "embed_n": 300}
    for key, value in (quick if ns.quick else full).items():
        if getattr(ns, key) is None:
            setattr(ns, key, value)
    if ns.quick and ns.stream == 10_000:
        ns.stream = 3000
    print(json.dumps(asyncio.run(main(ns))))
