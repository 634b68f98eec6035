"""Saga benchmarks: workflow start latency and completed runs per second per worker.

- start latency: ``client.start_workflow`` until it returns, sequentially, with and
  without eager start (the worker runs in this process, which eager start needs); each
  run is awaited before the next start, so starts do not queue behind runs;
- throughput: N three-step runs (transform -> transform -> transform, every step
  appending its events to Kafka) started at once on one worker, until all complete.

    .venv/bin/python bench/bench_sagas.py [--starts 100] [--runs 200]

Uses the stack named by OMNIHUB_STATE_DIR / OMNIHUB_STACK_PORT_OFFSET (the dev stack by
default), bringing its servers up if needed; topics and task queue are its own. Prints
a table and a final JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from temporalio.client import Client

from apps import worker as saga_worker
from infra.backing import SERVICES
from infra.stack import StackConfig, up
from omnihub.settings import Settings
from sagas.messages import RunInput, RunPolicy
from sagas.workflow import AgentWorkflow
from streams.admin import ensure_declared_topics

THREE_STEPS = "say alpha then upper beta then say gamma"


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    cut = statistics.quantiles(ordered, n=100, method="inclusive")
    return {
        "p50_ms": round(cut[49], 2),
        "p95_ms": round(cut[94], 2),
        "max_ms": round(ordered[-1], 2),
    }


def run_input(tenant: str) -> RunInput:
    run_id = f"bench-{uuid.uuid4()}"
    return RunInput(
        run_id=run_id,
        tenant_id=tenant,
        goal=THREE_STEPS,
        goal_event_id="bench-goal",
        policy=RunPolicy(),
    )


async def start_latency(client: Client, queue: str, n: int, eager: bool) -> dict[str, Any]:
    starts, runs = [], []
    for _ in range(n):
        inp = run_input("bench")
        began = time.perf_counter()
        handle = await client.start_workflow(
            AgentWorkflow.run, inp, id=inp.run_id, task_queue=queue, request_eager_start=eager
        )
        starts.append((time.perf_counter() - began) * 1000)
        await handle.result()
        runs.append((time.perf_counter() - began) * 1000)
    return {"eager": eager, "start": percentiles(starts), "run": percentiles(runs)}


async def throughput(client: Client, queue: str, n: int) -> dict[str, Any]:
    began = time.perf_counter()
    handles = [
        await client.start_workflow(AgentWorkflow.run, inp, id=inp.run_id, task_queue=queue)
        for inp in (run_input("bench") for _ in range(n))
    ]
    results = await asyncio.gather(*(h.result() for h in handles))
    elapsed = time.perf_counter() - began
    completed = sum(r.status == "completed" for r in results)
    return {
        "runs": n,
        "completed": completed,
        "seconds": round(elapsed, 2),
        "runs_per_s_per_worker": round(completed / elapsed, 2),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=100, help="sequential starts per mode")
    parser.add_argument("--runs", type=int, default=200, help="concurrent runs for throughput")
    args = parser.parse_args()

    cfg = StackConfig.from_env()
    up(cfg, [s.name for s in SERVICES])
    tag = uuid.uuid4().hex[:6]
    os.environ.update(
        {
            **cfg.client_env(),
            "OMNIHUB_TOPIC_PREFIX": f"bench{tag}",
            "OMNIHUB_TEMPORAL_TASK_QUEUE": f"bench-{tag}",
        }
    )
    settings = Settings()
    await ensure_declared_topics(settings)
    await saga_worker.migrate_tool_tables(settings)
    client = await saga_worker.connect(settings)
    queue = settings.temporal_task_queue
    async with (
        saga_worker.saga_activities(settings) as acts,
        saga_worker.build_worker(client, settings, acts),
    ):
        await start_latency(client, queue, 5, True)  # warm-up: connections, sandbox imports
        latency = [
            await start_latency(client, queue, args.starts, eager) for eager in (True, False)
        ]
        rate = await throughput(client, queue, args.runs)
    for row in latency:
        mode = "eager" if row["eager"] else "regular"
        start, run = row["start"], row["run"]
        print(
            f"start ({mode:7}) p50 {start['p50_ms']:7.1f} ms  p95 {start['p95_ms']:7.1f} ms"
            f"  | 3-step run p50 {run['p50_ms']:7.1f} ms  p95 {run['p95_ms']:7.1f} ms"
        )
    print(
        f"throughput: {rate['completed']}/{rate['runs']} runs in {rate['seconds']} s = "
        f"{rate['runs_per_s_per_worker']} runs/s on one worker"
    )
    print(json.dumps({"benchmark": "sagas", "start_latency": latency, "throughput": rate}))


if __name__ == "__main__":
    asyncio.run(main())
