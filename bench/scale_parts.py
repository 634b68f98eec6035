"""One projector process vs two on the same backlog, with the CPU each used.

Each side gets its own topics, schema and Redis prefix and the same backlog; the clock
starts when the backlog is appended, after all the processes joined the group, and stops when both
read models stand at the end of every partition. The CPU figures tell a core limit
(the processes were not given more CPU) from a design limit (they were, and did not
go faster).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psutil
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from bench import bench_projections as bp
from bench import pipeline_parts as pp
from bench.bench_sagas import throughput
from infra.launch import omnihub_argv, running
from omnihub.settings import Settings
from streams.admin import ensure_declared_topics
from streams.producer import producer_config, record_headers
from streams.topics import topic_for
from tests.integration.test_projection_store import caught_up, codec_for

Encoded = tuple[str, bytes, bytes, list[tuple[str, bytes]]]  # topic, key, value, headers


def encoded(settings: Settings, runs: int) -> list[Encoded]:
    """``runs`` stories (~6 events each) as the appender would write them."""
    codec = codec_for(settings)
    return [
        (
            topic_for(settings, e.EVENT_TYPE),
            e.envelope.run_id.encode(),
            codec.encode(e),
            record_headers(e),
        )
        for e in bp.events_for(runs, "s-")
    ]


async def fill(settings: Settings, records: list[Encoded]) -> int:
    """Append ``records``, encoded beforehand and pipelined with the appender's producer
    settings (acks=all, idempotent). Appending through ``KafkaEventAppender`` in
    batches of 1,000 was slower than one projector folds: the processes waited for the
    backlog (one projector used 54 % of a core), and the figure was the append's."""
    await ensure_declared_topics(settings)
    producer = AIOKafkaProducer(**producer_config(settings))
    await producer.start()
    try:
        sent = [
            await producer.send(topic, value=value, key=key, headers=headers)
            for topic, key, value, headers in records
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    return len(records)


async def projectors_rate(
    env: Mapping[str, str], settings: Settings, logs: Path, n: int, runs: int
) -> dict[str, Any]:
    """Events/s of ``n`` projector processes draining a fresh backlog, and their CPU."""
    await ensure_declared_topics(settings)
    records = encoded(settings, runs)  # before the clock: the projectors' work is timed
    with contextlib.ExitStack() as stack:
        procs = {
            f"projector{i}": psutil.Process(
                stack.enter_context(
                    running(
                        omnihub_argv("projector", "run", "--instance-id", f"p{i}"),
                        env,
                        logs / f"scale-{n}-{i}.log",
                    )
                ).pid
            )
            for i in range(n)
        }
        # All n in the group, partitions shared, before the backlog arrives: the figure
        # is the rate of n processes, not of one plus a rebalance.
        await _group_stable(settings, f"{settings.topic_prefix}-projector", n)
        procs |= pp.servers(Path(env["OMNIHUB_STATE_DIR"]))
        before, t0 = pp.cpu_seconds(procs), time.perf_counter()
        total = await fill(settings, records)  # folding starts while it is appended
        while not await caught_up(settings):  # noqa: ASYNC110 - other processes
            await asyncio.sleep(0.1)
        took = time.perf_counter() - t0
        cpu = pp.cpu_percent(before, pp.cpu_seconds(procs), took)
    # CPU per event of each process: the projectors' own cost, beside the servers'
    per_event = {k: round(1e4 * v * took / total, 1) for k, v in cpu.items()}
    return {"events": total, "events_per_s": round(total / took), "cpu_percent": cpu,
            "cpu_us_per_event": per_event}  # fmt: skip


async def _group_stable(settings: Settings, group: str, n: int, wait_s: float = 90) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            found = (await admin.describe_consumer_groups([group]))[0].groups[0]
            if found[2] == "Stable" and len(found[5]) == n:
                return
            await asyncio.sleep(0.2)
        raise RuntimeError(f"{group}: {n} members never became stable")
    finally:
        await admin.close()


async def workers_rate(
    env: Mapping[str, str], client: Client, logs: Path, n: int, runs: int
) -> dict[str, Any]:
    """Runs/s of ``runs`` three-step runs started at once on ``n`` worker processes."""
    queue = env["OMNIHUB_TEMPORAL_TASK_QUEUE"]
    await ensure_declared_topics(Settings(topic_prefix=env["OMNIHUB_TOPIC_PREFIX"]))
    with contextlib.ExitStack() as stack:
        procs = {
            f"worker{i}": psutil.Process(
                stack.enter_context(
                    running(omnihub_argv("worker", "run"), env, logs / f"workers-{n}-{i}.log")
                ).pid
            )
            for i in range(n)
        }
        await _pollers(client, queue, n)
        await throughput(client, queue, 5)  # warm-up: every worker's sandbox and clients
        procs |= pp.servers(Path(env["OMNIHUB_STATE_DIR"]))
        before, t0 = pp.cpu_seconds(procs), time.perf_counter()
        got = await throughput(client, queue, runs)
        cpu = pp.cpu_percent(before, pp.cpu_seconds(procs), time.perf_counter() - t0)
    return {"runs_per_s": got["runs_per_s_per_worker"], "completed": got["completed"],
            "cpu_percent": cpu}  # fmt: skip


async def _pollers(client: Client, queue: str, n: int, wait_s: float = 120) -> None:
    request = DescribeTaskQueueRequest(
        namespace=client.namespace,
        task_queue=TaskQueue(name=queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    )
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        found = await client.workflow_service.describe_task_queue(request)
        if len({p.identity for p in found.pollers}) >= n:
            return
        await asyncio.sleep(0.5)
    raise RuntimeError(f"{queue}: {n} workers never polled")
