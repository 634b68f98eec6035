"""Saga figures beside Temporal's bare limit, on the same server and worker settings.

Runs/s: N runs started at once on one worker (this process), OmniHub's three-step run
vs :class:`bench.bare.BareWorkflow`. Activity overhead: every activity's
scheduled -> completed time, read from the workflow histories of sequential runs,
OmniHub's p95 minus the no-op activity's p95.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Sequence
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from apps import worker as saga_worker
from bench import bare
from bench.bench_sagas import run_input, throughput
from omnihub.settings import Settings
from sagas.workflow import AgentWorkflow
from streams.admin import ensure_declared_topics


async def activity_ms(client: Client, workflow_ids: Sequence[str]) -> dict[str, list[float]]:
    """Scheduled -> completed milliseconds of every activity of these workflows, by type."""
    out: dict[str, list[float]] = {}
    for wid in workflow_ids:
        history = await client.get_workflow_handle(wid).fetch_history()
        scheduled = {}
        for ev in history.events:
            if ev.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                attrs = ev.activity_task_scheduled_event_attributes
                scheduled[ev.event_id] = (attrs.activity_type.name, ev.event_time.ToDatetime())
            elif ev.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                kind, began = scheduled[
                    ev.activity_task_completed_event_attributes.scheduled_event_id
                ]
                ms = (ev.event_time.ToDatetime() - began).total_seconds() * 1000
                out.setdefault(kind, []).append(ms)
    return out


def p95(values: Sequence[float]) -> float:
    """The 95th percentile."""
    return statistics.quantiles(values, n=100, method="inclusive")[94] if len(values) > 1 else 0.0


async def sequential(client: Client, queue: str, bare_queue: str, n: int) -> dict[str, float]:
    """``n`` runs of each kind, one at a time; their activities' p95 and the overhead."""
    omni, plain = [], []
    for _ in range(n):
        inp = run_input("bench")
        await client.execute_workflow(AgentWorkflow.run, inp, id=inp.run_id, task_queue=queue)
        omni.append(inp.run_id)
        wid = f"bare-{uuid.uuid4()}"
        await client.execute_workflow(bare.BareWorkflow.run, id=wid, task_queue=bare_queue)
        plain.append(wid)
    kinds, b = await activity_ms(client, omni), await activity_ms(client, plain)
    o = [ms for values in kinds.values() for ms in values]
    plain_ms = [ms for values in b.values() for ms in values]
    return {"activity_p95_ms": round(p95(o), 1), "bare_activity_p95_ms": round(p95(plain_ms), 1),
            "activity_overhead_p95_ms": round(p95(o) - p95(plain_ms), 1),
            "activity_p95_ms_by_type": {k: round(p95(v), 1) for k, v in kinds.items()},
            "activities_per_run": round(len(o) / n, 1)}  # fmt: skip


async def saga_figures(settings: Settings, runs: int, concurrent: int) -> dict[str, Any]:
    """Runs/s beside the bare workflow's, activity overhead, ``concurrent`` runs at once."""
    await ensure_declared_topics(settings)
    await saga_worker.migrate_tool_tables(settings)
    client = await saga_worker.connect(settings)
    queue, bare_queue = settings.temporal_task_queue, settings.temporal_task_queue + "-bare"
    slots = settings.worker_max_concurrent_activities
    cpu0 = time.process_time()
    async with (
        saga_worker.saga_activities(settings) as acts,
        saga_worker.build_worker(client, settings, acts),
        bare.bare_worker(client, bare_queue, slots),
    ):
        seq = await sequential(client, queue, bare_queue, 3)  # warms the sandbox up too
        bare_rate, _ = await bare.bare_runs_per_s(client, bare_queue, runs)
        omni = await throughput(client, queue, runs)
        many = await throughput(client, queue, concurrent)
        seq = await sequential(client, queue, bare_queue, 10)
    print(f"saga: {omni['runs_per_s_per_worker']} runs/s vs bare three-activity workflow "
          f"{bare_rate:.2f}/s ({runs} at once, one worker); {many['completed']}/{concurrent} "
          f"started at once completed in {many['seconds']} s; activity p95 "
          f"{seq['activity_p95_ms']} ms vs no-op {seq['bare_activity_p95_ms']} ms "
          f"({seq['activities_per_run']} activities per run: {seq['activity_p95_ms_by_type']}); "
          f"worker CPU "
          f"{time.process_time() - cpu0:.1f} s")  # fmt: skip
    await asyncio.sleep(0)
    return {"saga_runs_per_s": omni["runs_per_s_per_worker"],
            "bare_temporal_runs_per_s": round(bare_rate, 2),
            "concurrent_runs_started": concurrent, "concurrent_runs_completed": many["completed"],
            "concurrent_runs_seconds": many["seconds"], **seq}  # fmt: skip
