"""The whole pipeline, every stage beside its bare baseline, in one run.

1. HTTP: a bare FastAPI 202 endpoint vs ``POST /api/v1/goals`` (keys, limits, audit
   on), same uvicorn argv, same load generator (wrk if installed, else httpx);
2. the log: a bare aiokafka producer pipelining sends (acks=all, idempotent);
3. projections: raw consume of the topic and a bare fold (`bench/bare_fold.py`) vs the
   projector's sustained fold and a rebuild; lag at 2,000 events/s offered;
4. sagas: three no-op activities vs a three-step OmniHub run on the same server and
   worker settings; activity time from the histories; N runs started at once;
5. end to end: goals offered over HTTP at fixed rates (doubling) through the saga to
   the completed run visible in the read API; the highest rate sustained, e2e latency,
   each stage's lag and the CPU of every process (run before step 4, whose 1,000 runs
   at once leave the Temporal server busy for a while).

    .venv/bin/python bench/bench_pipeline.py [--quick]

Uses the stack named by OMNIHUB_STATE_DIR / OMNIHUB_STACK_PORT_OFFSET (the dev stack by
default); topics, schemas and task queues are its own. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from apps import worker as saga_worker
from bench import bare
from bench import bench_projections as bp
from bench import pipeline_parts as pp
from bench.bare_fold import bare_fold
from bench.saga_parts import saga_figures
from bench.scale_parts import projectors_rate, workers_rate
from infra.backing import SERVICES
from infra.stack import StackConfig, up
from omnihub.settings import Settings
from projections.rebuild import rebuild_postgres
from streams.admin import ensure_declared_topics
from streams.producer import producer_config
from streams.topics import Topic, topic_name

BACKING = [s.name for s in SERVICES if s.name not in {"chain"}]


def env_for(cfg: StackConfig, tag: str) -> dict[str, str]:
    """Client env for a stack and a private prefix, schema, Redis prefix and queue."""
    return {
        **cfg.client_env(),
        "OMNIHUB_TOPIC_PREFIX": tag,
        "OMNIHUB_PROJECTIONS_SCHEMA": tag,
        "OMNIHUB_PROJECTIONS_REDIS_PREFIX": tag,
        "OMNIHUB_TEMPORAL_TASK_QUEUE": tag,
        # Limits stay on, set above the offered load: the bench measures their cost.
        "OMNIHUB_RATE_LIMIT_PER_MINUTE": "100000000",
        "OMNIHUB_CONCURRENCY_LIMIT": "10000",
        "OMNIHUB_DEFAULT_TIER": "enterprise",  # no monthly goal quota
    }


async def http_figures(
    cfg: StackConfig, tag: str, logs: Path, a: argparse.Namespace
) -> dict[str, Any]:
    env = env_for(cfg, tag)
    bare_http, bare_cpu = await _bare_http("create_app", env, logs, a)
    bare_cpu_s = bare_cpu["bare"]
    # Kafka's CPU too: the append is most of what a durable goal costs the machine
    appending, append_cpu = await _bare_http(
        "create_append_app", env, logs, a, pp.servers(cfg.state_dir)
    )
    append_ms = {
        k: round(1000 * v / max(appending["requests"], 1), 2) for k, v in append_cpu.items()
    }
    with pp.omnihub(env, logs, ["gateway"]) as (url, key, procs):
        before, t0 = pp.cpu_seconds(procs), time.perf_counter()
        http = await pp.http_rate(url, key, a.http_seconds, a.concurrency)
        after = pp.cpu_seconds(procs)
        cpu = pp.cpu_percent(before, after, time.perf_counter() - t0)
    # CPU per request: what the share of a loaded machine's cores does not change.
    api_ms = 1000 * (after["api"] - before["api"]) / max(http["requests"], 1)
    bare_ms = 1000 * bare_cpu_s / max(bare_http["requests"], 1)
    os.environ.update(env)
    settings = Settings()
    topic = topic_name(settings, Topic.RUNS)
    producer = await bare.bare_producer_rate(producer_config(settings), topic, a.produce)
    print(f"HTTP ingestion {http['per_s']:,.0f}/s (p99 {http['p99_ms']:.0f} ms) vs bare "
          f"FastAPI {bare_http['per_s']:,.0f}/s, bare FastAPI with one append "
          f"{appending['per_s']:,.0f}/s [{http['generator']}]; bare producer "
          f"{producer:,.0f}/s; CPU % {cpu}; server CPU per request {api_ms:.2f} ms vs bare "
          f"{bare_ms:.2f} ms; CPU ms per request with one append {append_ms}")  # fmt: skip
    return {
        "http_goals_per_s": round(http["per_s"], 1),
        "bare_http_per_s": round(bare_http["per_s"], 1),
        "bare_append_http_per_s": round(appending["per_s"], 1),
        "bare_append_cpu_ms_per_request": append_ms,
        "http_p99_ms": round(http["p99_ms"], 1),
        "bare_producer_per_s": round(producer),
        "load_generator": http["generator"],
        "http_cpu_percent": cpu,
        "api_cpu_ms_per_request": round(api_ms, 2),
        "bare_http_cpu_ms_per_request": round(bare_ms, 2),
    }


async def _bare_http(
    factory: str,
    env: Mapping[str, str],
    logs: Path,
    a: argparse.Namespace,
    beside: Mapping[str, psutil.Process] | None = None,
) -> tuple[dict[str, Any], dict[str, float]]:
    """The rate of one of ``bench.bare``'s apps under the load generator, and the CPU
    seconds it (and the processes ``beside`` it) used meanwhile."""
    with bare.running_uvicorn(f"bench.bare:{factory}", env, logs) as url:
        procs = {"bare": pp.listening(url), **(beside or {})}
        before = pp.cpu_seconds(procs)
        rate = await pp.http_rate(url, "none", a.http_seconds, a.concurrency)
        return rate, {k: v - before[k] for k, v in pp.cpu_seconds(procs).items()}


async def projection_figures(tag: str, a: argparse.Namespace) -> dict[str, Any]:
    settings = Settings(topic_prefix=tag, projections_schema=tag, projections_redis_prefix=tag,
                        topic_partitions=6)  # fmt: skip
    await ensure_declared_topics(settings)
    backlog = bp.events_for(a.backlog_runs, "t-")
    fold = await bp.drain(settings, backlog)
    fold_us = 1e6 * bp.LAST_DRAIN_CPU.seconds / len(backlog)
    lags = await bp.lag_at_rate(settings, 2000, a.lag_seconds)
    raw = await bp.raw_consume_rate(settings)
    bare = await bare_fold(settings)
    with bp.Cpu() as rebuild_cpu:
        rebuilt = await rebuild_postgres(settings, swap=False)
    rebuild_us = 1e6 * rebuild_cpu.seconds / max(rebuilt.events, 1)
    p99 = pp.pct(lags, 99) * 1000
    print(f"projector {fold:,.0f} events/s ({fold_us:.0f} us CPU per event); raw consume "
          f"{raw:,.0f}/s ({bp.LAST_RAW_CPU_US[0]:.1f} us CPU per event); bare fold "
          f"{bare.events_per_s:,.0f}/s ({bare.cpu_us_per_event:.1f} us CPU per event); rebuild "
          f"{rebuilt.events_per_s:,.0f}/s ({rebuild_us:.0f} us CPU per event); lag at 2,000/s: "
          f"p50 {pp.pct(lags, 50) * 1000:.0f} ms, p99 {p99:.0f} ms")  # fmt: skip
    return {"projector_events_per_s": round(fold), "raw_consume_events_per_s": round(raw),
            "rebuild_events_per_s": round(rebuilt.events_per_s),
            "bare_fold_events_per_s": round(bare.events_per_s),
            "bare_fold_cpu_us_per_event": round(bare.cpu_us_per_event, 1),
            "projector_cpu_us_per_event": round(fold_us, 1),
            "rebuild_cpu_us_per_event": round(rebuild_us, 1),
            "raw_consume_cpu_us_per_event": round(bp.LAST_RAW_CPU_US[0], 1),
            "lag_p50_ms_at_2000": round(pp.pct(lags, 50) * 1000, 1),
            "lag_p99_ms_at_2000": round(p99, 1)}  # fmt: skip


async def e2e_figures(
    cfg: StackConfig, tag: str, logs: Path, a: argparse.Namespace
) -> dict[str, Any]:
    env = env_for(cfg, tag)
    names = ["gateway", "saga-bridge", "worker", "projector"]
    best: dict[str, Any] = {"goals_per_s": 0.0, "e2e_p99_ms": None}
    steps: list[dict[str, Any]] = []
    with pp.omnihub(env, logs, names) as (url, key, procs):
        await pp.offer(url, key, 1, 3, 60)  # warm-up: sandbox imports, consumer joins
        rate = a.start_rate
        while rate <= a.max_rate:
            before, t0 = pp.cpu_seconds(procs), time.perf_counter()
            got = await pp.offer(url, key, rate, a.window, a.window * 2)
            row = pp.summarize(got, a.window) | {
                "cpu_percent": pp.cpu_percent(
                    before, pp.cpu_seconds(procs), time.perf_counter() - t0
                )
            }
            steps.append(row)
            print(f"offered {rate}/s: {json.dumps(row)}")
            if not row["sustained"]:
                break
            best = row
            rate *= 2
    return {"e2e_goals_per_s": best["goals_per_s"], "e2e_p50_ms": best.get("e2e_p50_ms"),
            "e2e_p99_ms": best["e2e_p99_ms"], "e2e_steps": steps}  # fmt: skip


async def scale_figures(
    cfg: StackConfig, tag: str, logs: Path, a: argparse.Namespace
) -> dict[str, Any]:
    """One projector process, then two, on the same backlog (fresh topics each)."""
    rows = {}
    for n in (1, 2):
        env = env_for(cfg, f"{tag}x{n}")
        settings = Settings(topic_prefix=env["OMNIHUB_TOPIC_PREFIX"], projections_schema=env[
            "OMNIHUB_PROJECTIONS_SCHEMA"], projections_redis_prefix=env[
            "OMNIHUB_PROJECTIONS_REDIS_PREFIX"], topic_partitions=6)  # fmt: skip
        env["OMNIHUB_TOPIC_PARTITIONS"] = "6"
        rows[n] = await projectors_rate(env, settings, logs, n, 4000)  # ~25,600 events
        print(f"{n} projector process(es): {json.dumps(rows[n])}")
    client = await saga_worker.connect(Settings())
    workers = {}
    for n in (1, 2):
        env = env_for(cfg, f"{tag}w{n}")
        workers[n] = await workers_rate(env, client, logs, n, a.runs)
        print(f"{n} worker process(es): {json.dumps(workers[n])}")
    return {"workers_1_runs_per_s": workers[1]["runs_per_s"],
            "workers_2_runs_per_s": workers[2]["runs_per_s"],
            "workers_2_over_1": round(workers[2]["runs_per_s"] / workers[1]["runs_per_s"], 2),
            "workers_cpu_percent": {n: r["cpu_percent"] for n, r in workers.items()},
            "projectors_1_events_per_s": rows[1]["events_per_s"],
            "projectors_2_events_per_s": rows[2]["events_per_s"],
            "projectors_2_over_1": round(rows[2]["events_per_s"] / rows[1]["events_per_s"], 2),
            "projectors_cpu_percent": {n: r["cpu_percent"] for n, r in rows.items()},
            "projectors_cpu_us_per_event": {
                n: r["cpu_us_per_event"] for n, r in rows.items()}}  # fmt: skip


async def main(a: argparse.Namespace) -> None:
    cfg = StackConfig.from_env()
    up(cfg, BACKING)
    tag, logs = "bp" + uuid.uuid4().hex[:6], Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    os.environ.update(cfg.client_env())
    load_before = os.getloadavg()
    result: dict[str, Any] = {"benchmark": "pipeline", "quick": a.quick, "cores": os.cpu_count()}
    if "http" in a.stages:
        result |= await http_figures(cfg, tag + "h", logs, a)
    if "projections" in a.stages:
        result |= await projection_figures(tag + "p", a)
    # End to end before the saga stage: its 1,000 runs at once leave the Temporal dev
    # server busy for a while, and an e2e stage right after it measured that (p50 6.7 s
    # at 4 goals/s against 0.66 s on its own).
    if "e2e" in a.stages:
        result |= await e2e_figures(cfg, tag + "e", logs, a)
    if "sagas" in a.stages:
        os.environ.update(env_for(cfg, tag + "s"))
        result |= await saga_figures(Settings(), a.runs, a.concurrent)
    if "scale" in a.stages:
        result |= await scale_figures(cfg, tag, logs, a)
    result["loadavg_before"] = [round(x, 2) for x in load_before]
    result["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    print(f"machine: {os.cpu_count()} cores, load average {result['loadavg_before']} before, "
          f"{result['loadavg_after']} after; logs in {logs}")  # fmt: skip
    print(json.dumps(result))


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="short windows: under 3 minutes")
    p.add_argument("--stages", help="comma-separated; default: all (--quick: all but scale)")
    p.add_argument("--http-seconds", type=int, help="HTTP window, each side (default 10; 5 quick)")
    a = p.parse_args(argv)
    q = a.quick
    a.stages = a.stages or ("http,projections,sagas,e2e" + ("" if q else ",scale"))
    a.http_seconds = a.http_seconds or (5 if q else 10)  # longer: warm-up weighs less
    a.concurrency, a.produce = 32, (10000 if q else 50000)
    a.backlog_runs, a.lag_seconds = (1000 if q else 4000), (5 if q else 15)
    a.runs, a.concurrent = (50 if q else 200), (100 if q else 1000)
    a.start_rate, a.max_rate, a.window = 1, (4 if q else 64), (6 if q else 20)
    return a


if __name__ == "__main__":
    asyncio.run(main(parse()))
