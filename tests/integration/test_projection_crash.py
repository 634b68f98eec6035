"""The projector as a real process: kill -9 storms and consumer-group rebalances.

Afterwards every projection must equal a clean rebuild from the log (row counts and
content checksums at the same positions) and the totals must match what was appended.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
from pathlib import Path

from infra.launch import omnihub_argv, spawn
from omnihub.settings import Settings
from projections.rebuild import rebuild_postgres, rebuild_redis
from streams.admin import ensure_declared_topics
from tests.integration.test_projection_store import (
    append,
    caught_up,
    fetch,
    isolated_settings,
    stories,
    wait_for,
)


def env_of(settings: Settings, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "OMNIHUB_TOPIC_PREFIX": settings.topic_prefix,
        "OMNIHUB_TOPIC_PARTITIONS": str(settings.topic_partitions),
        "OMNIHUB_PROJECTIONS_SCHEMA": settings.projections_schema,
        "OMNIHUB_PROJECTIONS_REDIS_PREFIX": settings.projections_redis_prefix,
        "OMNIHUB_LIVE_RETENTION_S": str(settings.live_retention_s),
        "OMNIHUB_CONSUMER_MAX_RECORDS": "40",
        **extra,
    }


def start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return spawn(omnihub_argv("projector", "run"), env, log)


async def produce(settings: Settings, runs: int, chunk: int, pause_s: float) -> int:
    """Append ``runs`` runs in chunks while the processor works; return the event count."""
    total = 0
    for i in range(0, runs, chunk):
        events = [e for r in stories(chunk, f"c{i}-") for e in r]
        await append(settings, events)
        total += len(events)
        await asyncio.sleep(pause_s)
    return total


async def applied_so_far(settings: Settings) -> int:
    try:
        rows = await fetch(
            settings, "SELECT coalesce(sum(next_offset), 0) FROM projector_positions"
        )
    except Exception:  # not migrated yet
        return 0
    return int(rows[0][0])


async def assert_exact(settings: Settings, runs: int, events: int) -> None:
    await wait_for(lambda: caught_up(settings), 240, "the projector to catch up")
    pg = await rebuild_postgres(settings, swap=False)
    assert pg.equal, pg.differences
    assert pg.events == events
    rd = await rebuild_redis(settings, swap=False)
    assert rd.equal, rd.differences
    totals = await fetch(
        settings,
        "SELECT (SELECT count(*) FROM runs),"
        " (SELECT count(*) FROM run_events), (SELECT sum(goals) FROM kpi_minute)",
    )
    assert tuple(totals[0]) == (runs, events, runs)


async def test_kill_9_in_mid_batch_many_times_equals_a_clean_rebuild(tmp_path: Path) -> None:
    settings = isolated_settings()
    await ensure_declared_topics(settings)
    # Static membership: a restarted process takes its partitions back without waiting.
    env = env_of(settings, OMNIHUB_CONSUMER_INSTANCE_ID="crash-test")
    log = tmp_path / "projector.log"
    producer = asyncio.create_task(produce(settings, runs=1200, chunk=40, pause_s=0.8))
    proc = start(env, log)
    rng = random.Random(11)
    kills, progressed, applied = 0, 0, 0
    try:
        while not producer.done() or kills < 5:
            await asyncio.sleep(rng.uniform(3.0, 6.0))
            now = await applied_so_far(settings)
            progressed += now > applied  # this life folded something before dying
            applied = now
            proc.kill()  # SIGKILL: no flush, no commit, mid-batch
            proc.wait()
            kills += 1
            proc = start(env, log)
        events = await producer
        await assert_exact(settings, 1200, events)
    finally:
        proc.terminate()
        proc.wait(30)
    assert kills >= 5 and progressed >= 3


async def test_two_instances_and_forced_rebalances_lose_and_double_nothing(
    tmp_path: Path,
) -> None:
    settings = isolated_settings()
    await ensure_declared_topics(settings)
    env = env_of(settings)
    producer = asyncio.create_task(produce(settings, runs=800, chunk=40, pause_s=0.8))
    first = start(env, tmp_path / "a.log")
    procs = [first]
    try:
        await asyncio.sleep(5)
        procs.append(start(env, tmp_path / "b.log"))  # joins: partitions are shared out
        await asyncio.sleep(6)
        first.terminate()  # leaves mid-stream: the other takes its partitions
        first.wait(30)
        await asyncio.sleep(3)
        procs.append(start(env, tmp_path / "c.log"))  # and another rebalance
        events = await producer
        await assert_exact(settings, 800, events)
    finally:
        for p in procs:
            p.terminate()
            p.wait(30)
