"""Plan cache benchmark: matching on labelled pairs, a Zipf stream, lookup latency.

Runs against the Postgres of the local stack (``OMNIHUB_POSTGRES_DSN``) in a scratch
schema it drops afterwards::

    .venv/bin/python bench/bench_plan_cache.py            # 10k and 100k entries
    .venv/bin/python bench/bench_plan_cache.py --quick    # a couple of minutes
    .venv/bin/python bench/bench_plan_cache.py --lookup-only --sizes 100000

It prints, each figure beside its baseline from the same run:

- precision and recall on the dev and the held-out test split, per kind;
- a 10,000-goal stream drawn with Zipf over templates and slot values: hit rate and
  model calls saved, beside the hit rate of a cache keyed by the goal's exact text;
- embedding one goal with ONNX Runtime and with sentence-transformers (the reference),
  side by side, and how closely they agree;
- per size, a whole lookup (``SemanticPlanCache.lookup``: extract, embed, HNSW top 5
  over the tenant's and the shared scope, match) split into embedding, index and the
  rest, each lookup followed by the bare ONNX Runtime run of its template and the bare
  pgvector query (top 5, no filter, one table) of its precomputed vector, so the three
  see the same load; then the database part alone with its recall against an exact
  scan, the same for a tenant without entries, and the machine's load (``uptime``).

Up to ``--embed-max`` entries are real template embeddings; beyond that, entries are
noisy copies of them (cosine ~0.9 to their source), so 100k entries load in seconds.
The last line is the whole result as one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import plan_cache_parts as parts
from domain.templates import extract
from omnihub.settings import Settings
from projections.migrate import quote_ident
from projections.plan_cache.embedder import SentenceTransformerEmbedder
from projections.plan_cache.evaluation import SPLITS, evaluate, load_pairs
from projections.plan_cache.onnx_embedder import OnnxEmbedder
from projections.plan_cache.store import PgPlanCacheStore, lookup_pool, migrate
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
TENANTS = parts.TENANTS


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
            "single_goal": parts.quantiles(singles),
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
    results: dict[str, Any] = {"quick": args.quick, "load_at_start": load_average()}
    if not args.lookup_only:
        await matching(args, results, onnx, reference)
    rng = np.random.default_rng(7)
    sizes = [int(s) for s in args.sizes.split(",")]
    texts = templates(max(sizes))
    real = onnx.encode([t for t, _ in texts[: args.embed_max]])
    vectors = np.concatenate([real, parts.noisy_copies(real, max(sizes) - len(real), rng)])
    asked = query_goals(texts, args.queries)
    probe = onnx.encode([g for _, g in asked])
    pool = await asyncpg.create_pool(args.dsn, min_size=1, max_size=2)
    lookups = await lookup_pool(args.dsn)  # as the worker's cache: no reset per lookup
    schema = f"bench_pc_{uuid.uuid4().hex[:8]}"
    try:
        await migrate(pool, schema)
        store = PgPlanCacheStore(pool, schema=schema, lookups=lookups)
        for size in sizes:
            results.update(await one_size(args, store, pool, texts, vectors, probe, asked, size))
    finally:
        await pool.execute(f"DROP SCHEMA {quote_ident(schema)} CASCADE")
        await lookups.close()
        await pool.close()
    results["load_at_end"] = load_average()
    return results


def load_average() -> dict[str, Any]:
    """The machine's load (2 shared cores: other engineers' work runs beside this)."""
    uptime = subprocess.run(["uptime"], capture_output=True, text=True, check=False)
    one, five, _ = os.getloadavg()
    return {"load_1m": round(one, 2), "load_5m": round(five, 2), "uptime": uptime.stdout.strip()}


async def matching(
    args: argparse.Namespace,
    results: dict[str, Any],
    onnx: OnnxEmbedder,
    reference: SentenceTransformerEmbedder,
) -> None:
    """Labelled pairs, the Zipf stream and the two embedders side by side."""
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
    rows = parts.entry_rows(texts[:size], vectors[:size])
    build_s = await parts.load(args.dsn, store, rows, vectors[:size])
    slots = [sorted(extract(goal).slot_names) for _, goal in asked]
    queries = [(t, s, v) for (t, _), s, v in zip(asked, slots, probe, strict=True)]
    # A tenant with no entries of its own reads its (other tenants') hash partition
    # and the shared scope: the scan can only stop at max_scan_tuples or the end.
    newcomer = [("tenant-new", s, v) for _, s, v in queries]
    out = {
        f"lookup_{size}": {
            "entries": size,
            "rows": len(rows),
            "index_build_s": round(build_s, 1),
            "load_before": load_average(),
            "plan_uses": await parts.scans(pool, store, probe[0]),
            "whole_lookup": await parts.lookups(
                store, asked, probe, args.threshold, args.ef_search
            ),
            "database_part": await parts.measure(store, queries, args.ef_search),
            "database_part_tenant_without_entries": await parts.measure(
                store, newcomer, args.ef_search
            ),
            "bare_index": await parts.unfiltered(pool, store.schema, probe, args.ef_search),
            "load_after": load_average(),
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
    parser.add_argument(
        "--lookup-only", action="store_true", help="skip labelled pairs, stream, embedders"
    )
    ns = parser.parse_args()
    quick = {"sizes": "20000", "queries": 100, "embed_max": 5000, "embed_n": 100}
    full = {"sizes": "10000,100000", "queries": 300, "embed_max": 20000, "embed_n": 300}
    for key, value in (quick if ns.quick else full).items():
        if getattr(ns, key) is None:
            setattr(ns, key, value)
    if ns.quick and ns.stream == 10_000:
        ns.stream = 3000
    print(json.dumps(asyncio.run(main(ns))))
