"""Lookup latency parts of ``bench/bench_plan_cache.py``: loading entries, timing a
lookup's parts (embedding, index, the rest) beside the bare ONNX Runtime run and the
bare pgvector query of the same goal, and the index's recall.

Entries belong to ``TENANTS`` tenants; 2% are shared with every tenant and 1% with two
other tenants by name, so lookups read a tenant's scope and the shared one as in use.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import numpy as np
import onnxruntime as ort
from pgvector.asyncpg import register_vector
from tokenizers import Tokenizer

from domain.templates import extract
from projections.migrate import quote_ident
from projections.plan_cache.adapter import SemanticPlanCache, fixed
from projections.plan_cache.embedder import Vectors, bundled_model_path
from projections.plan_cache.onnx_embedder import OnnxEmbedder, ensure_onnx
from projections.plan_cache.store import Candidate, PgPlanCacheStore, as_real_array

TENANTS = 20
COLUMNS = [
    "scope",
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
    "shared_with",
    "pattern",
]
STEPS = json.dumps(
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


def quantiles(latencies: Sequence[float]) -> dict[str, float]:
    q = statistics.quantiles(latencies, n=100)
    return {"p50_ms": round(q[49], 2), "p95_ms": round(q[94], 2)}


def sharing(i: int) -> list[str]:
    """Entry ``i``'s sharing list: 2% with everyone, 1% with two tenants by name (the
    moduli are prime to the templates' 6 tails, so shared entries take every slot set)."""
    if i % 47 == 0:
        return ["*"]
    if i % 101 == 1:
        return [f"tenant-{(i + 1) % TENANTS}", f"tenant-{(i + 2) % TENANTS}"]
    return []


def scopes(owner: str, shared_with: list[str]) -> list[str]:
    """Python twin of ``plan_cache_scopes`` (migration 0160)."""
    return ["*"] if "*" in shared_with else [*(t for t in shared_with if t != owner), owner]


def entry_rows(texts: list[tuple[str, list[str]]], vectors: np.ndarray) -> list[tuple]:
    """One row per scope of each entry, as the store writes them."""
    now, rows = datetime.now(UTC), []
    expires = now + timedelta(hours=24)
    for i, ((text, slots), v) in enumerate(zip(texts, vectors, strict=True)):
        owner, shared, template = f"tenant-{i % TENANTS}", sharing(i), f"{text} #{i}"
        source = ("bench", f"p{i}", f"e{i}", now, expires, shared, template)
        rows += [
            (s, owner, template, sorted(slots), STEPS, v, *source) for s in scopes(owner, shared)
        ]
    return rows


def noisy_copies(base: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    picks = base[rng.integers(0, len(base), n)]
    noisy = picks + rng.normal(0, 0.45 / np.sqrt(base.shape[1]), picks.shape).astype(np.float32)
    return noisy / np.linalg.norm(noisy, axis=1, keepdims=True)


async def load(dsn: str, store: PgPlanCacheStore, rows: list[tuple], vectors: np.ndarray) -> float:
    """Fill the store and the bare table (the same vectors, one unfiltered HNSW index)."""
    schema = quote_ident(store.schema)
    # Its own connection: pgvector's binary codec must not leak into the store's pool.
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"TRUNCATE {store.entries}")
        await conn.execute(f"DROP INDEX IF EXISTS {schema}.plan_cache_entries_embedding_hnsw")
        await conn.execute(f"DROP TABLE IF EXISTS {schema}.bare_vectors")
        await conn.execute(f"CREATE TABLE {schema}.bare_vectors (id int, embedding halfvec(384))")
        await register_vector(conn)  # binary COPY needs pgvector's codec
        await conn.copy_records_to_table(
            "plan_cache_entries", schema_name=store.schema, records=rows, columns=COLUMNS
        )
        await conn.copy_records_to_table(
            "bare_vectors", schema_name=store.schema, records=list(enumerate(vectors))
        )
        started = time.perf_counter()
        await conn.execute("SET maintenance_work_mem = '1GB'")
        for table in ("plan_cache_entries", "bare_vectors"):
            await conn.execute(
                f"CREATE INDEX ON {schema}.{table} USING hnsw"
                " (embedding halfvec_cosine_ops) WITH (m = 16, ef_construction = 64)"
            )
            await conn.execute(f"ANALYZE {schema}.{table}")
        return time.perf_counter() - started
    finally:
        await conn.close()


class TimedOnnx(OnnxEmbedder):
    """The default embedder, recording each ``embed`` (wall) and ``encode`` (CPU)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed_ms: list[float] = []
        self.encode_cpu_ms: list[float] = []

    def encode(self, texts: Sequence[str]) -> Vectors:
        started = time.thread_time()
        out = super().encode(texts)
        self.encode_cpu_ms.append((time.thread_time() - started) * 1000)
        return out

    async def embed(self, texts: Sequence[str]) -> Vectors:
        started = time.perf_counter()
        out = await super().embed(texts)
        self.embed_ms.append((time.perf_counter() - started) * 1000)
        return out


class TimedStore(PgPlanCacheStore):
    """The store, recording each ``nearest`` (wall, one round trip)."""

    index_ms: list[float]

    async def nearest(self, *args: Any, **kwargs: Any) -> list[Candidate]:
        started = time.perf_counter()
        out = await super().nearest(*args, **kwargs)
        self.index_ms.append((time.perf_counter() - started) * 1000)
        return out


class BareOnnx:
    """The model's forward pass alone: a session on the same file, tokens ready."""

    def __init__(self) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(ensure_onnx()), options, providers=["CPUExecutionProvider"]
        )
        self.tokenizer = Tokenizer.from_file(str(bundled_model_path() / "tokenizer.json"))
        # The model's tokenizer.json pads every text to 128 tokens; a goal is ~10.
        self.tokenizer.no_padding()

    def feeds(self, text: str) -> dict[str, np.ndarray]:
        ids = np.array([self.tokenizer.encode(text).ids], dtype=np.int64)
        return {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": 0 * ids}

    def run(self, feeds: dict[str, np.ndarray]) -> float:
        started = time.perf_counter()
        self.session.run(["last_hidden_state"], feeds)
        return (time.perf_counter() - started) * 1000


async def bare_index(conn: asyncpg.Connection, schema: str, vector: np.ndarray) -> float:
    """One unfiltered top-5 query of a precomputed vector on the bare table."""
    started = time.perf_counter()
    await conn.fetch(
        f"SELECT id FROM {quote_ident(schema)}.bare_vectors"
        " ORDER BY embedding <=> $1::real[]::halfvec LIMIT 5",
        as_real_array(vector),
    )
    return (time.perf_counter() - started) * 1000


async def lookups(
    store: PgPlanCacheStore,
    goals: list[tuple[str, str]],
    probe: np.ndarray,
    threshold: float,
    ef_search: int,
) -> dict[str, Any]:
    """Whole lookups split into embedding, index and the rest, each beside the bare
    ONNX run and the bare index query of the same goal, timed one after the other so
    all three see the same load."""
    timed = TimedStore(store.pool, schema=store.schema, lookups=store.lookups)
    onnx, bare = TimedOnnx(), BareOnnx()
    cache = SemanticPlanCache(fixed(timed), onnx, threshold=threshold, ef_search=ef_search)
    conn = await store.pool.acquire()
    try:
        await conn.execute(f"SET hnsw.ef_search = {int(ef_search)}")
        timed.index_ms = []
        await cache.lookup("tenant-0", "warm up the model and the pool")
        feeds = [bare.feeds(extract(goal).text) for _, goal in goals]
        bare.run(feeds[0])
        out: dict[str, Any] = {}
        # First pass: every template is new, so every lookup embeds. Second pass: the
        # same goals again, their templates in the embedder's LRU (a repeated template).
        for name in ("new_template", "seen_template"):
            onnx.embed_ms, onnx.encode_cpu_ms, timed.index_ms = [], [], []
            total, rest, bare_onnx, bare_idx, hits = [], [], [], [], 0
            for i, (tenant, goal) in enumerate(goals):
                started = time.perf_counter()
                found = await cache.lookup(tenant, goal)
                total.append((time.perf_counter() - started) * 1000)
                rest.append(total[-1] - onnx.embed_ms[-1] - timed.index_ms[-1])
                hits += found.hit is not None
                bare_onnx.append(bare.run(feeds[i]))
                bare_idx.append(await bare_index(conn, store.schema, probe[i]))
            out[name] = {
                "total": quantiles(total),
                "embed": quantiles(onnx.embed_ms),
                "embed_cpu": quantiles(onnx.encode_cpu_ms) if onnx.encode_cpu_ms else None,
                "index": quantiles(timed.index_ms),
                "extract_and_match": quantiles(rest),
                "bare_onnx_run": quantiles(bare_onnx),
                "bare_index": quantiles(bare_idx),
                "queries": len(goals),
                "hits": hits,
            }
        return out
    finally:
        await conn.execute("RESET ALL")
        await store.pool.release(conn)


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
    return {**quantiles(latencies), "recall_at_5": round(float(np.mean(overlap)), 4)}


async def unfiltered(
    pool: asyncpg.Pool, schema: str, probes: np.ndarray, ef_search: int
) -> dict[str, float]:
    """The bare index alone: top 5 over all vectors, HNSW against an exact scan."""
    sql = (
        f"SELECT id FROM {quote_ident(schema)}.bare_vectors"
        " ORDER BY embedding <=> $1::real[]::halfvec LIMIT 5"
    )
    found, overlap = [], []
    async with pool.acquire() as conn:
        await conn.execute(f"SET hnsw.ef_search = {int(ef_search)}")
        latencies = [await bare_index(conn, schema, vector) for vector in probes]
        for vector in probes:
            found.append({r[0] for r in await conn.fetch(sql, as_real_array(vector))})
        await conn.execute("SET enable_indexscan = off")
        for vector, ann in zip(probes, found, strict=True):
            exact = {r[0] for r in await conn.fetch(sql, as_real_array(vector))}
            overlap.append(len(ann & exact) / 5)
        await conn.execute("RESET ALL")
    return {**quantiles(latencies), "recall_at_5": round(float(np.mean(overlap)), 4)}


async def scans(pool: asyncpg.Pool, store: PgPlanCacheStore, probe: np.ndarray) -> list[str]:
    """The index scans Postgres picks for a lookup's query (is HNSW used, on which
    partitions?)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL hnsw.iterative_scan = strict_order")
        queries = [
            f"(SELECT template FROM {store.entries} WHERE scope = '{scope}'"
            " AND slot_names <@ '{DESTINATION}' AND expires_at > now()"
            " ORDER BY embedding <=> $1::real[]::halfvec LIMIT 5)"
            for scope in ("tenant-1", "*")
        ]
        # The two scans of plan_cache_nearest(): the tenant's scope and '*'.
        plan = await conn.fetchval(
            f"EXPLAIN (FORMAT JSON) {' UNION ALL '.join(queries)}", as_real_array(probe)
        )
    return sorted(set(re.findall(r'"Index Name": "([^"]+)"', plan))) or ["seq scan"]
