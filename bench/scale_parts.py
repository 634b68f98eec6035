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
from aiokafka.admin import AIOKafkaAdminClient

from bench import bench_projections as bp
from bench import pipeline_parts as pp
from infra.launch import omnihub_argv, running
from omnihub.settings import Settings
from streams.admin import ensure_declared_topics
from streams.producer import KafkaEventAppender
from tests.integration.test_projection_store import caught_up, codec_for


async def fill(settings: Settings, runs: int) -> int:
    """Append ``runs`` stories (~6 events each) to the settings' topics."""
    await ensure_declared_topics(settings)
    events = bp.events_for(runs, "s-")
    appender = KafkaEventAppender(settings, codec_for(settings), timeout_s=120)
    await appender.start()
    for i in range(0, len(events), 1000):
        await appender.append_many(events[i : i + 1000])
    await appender.stop()
    return len(events)


async def projectors_rate(
    env: Mapping[str, str], settings: Settings, logs: Path, n: int, runs: int
) -> dict[str, Any]:
    """Events/s of ``n`` projector processes draining a fresh backlog, and their CPU."""
    await ensure_declared_topics(settings)
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
        total = await fill(settings, runs)  # folding starts while it is appended
        while not await caught_up(settings):  # noqa: ASYNC110 - other processes
            await asyncio.sleep(0.1)
        took = time.perf_counter() - t0
        cpu = pp.cpu_percent(before, pp.cpu_seconds(procs), took)
    return {"events": total, "events_per_s": round(total / took), "cpu_percent": cpu}


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
