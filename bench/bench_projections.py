"""Projection benchmark on the running (test or dev) stack.

Prints: sustained events/s folded into Postgres and Redis (a backlog drained by one
projector), projection lag p50/p99 at a fixed offered rate, and rebuild speed next to
the raw consume rate of the same topics in the same run; then one JSON line.

    OMNIHUB_KAFKA_BOOTSTRAP=127.0.0.1:19092 ... python bench/bench_projections.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg

from apps.projector import run_projector
from bench.bare_fold import bare_fold
from domain.events import Event
from omnihub.settings import Settings
from projections.pg_store import positions
from projections.rebuild import rebuild_postgres, rebuild_redis
from streams.admin import ensure_declared_topics
from streams.producer import AppendResult, KafkaEventAppender
from streams.replay import end_offsets, replay
from tests.integration.test_projection_store import caught_up, codec_for, stories


def events_for(runs: int, tag: str) -> list[Event]:
    return [e for r in stories(runs, tag) for e in r]


class Cpu:
    """This process's CPU seconds over a stretch of work (what a loaded machine's share
    of the cores does not change, unlike events/s)."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __enter__(self) -> Cpu:
        self._t0 = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.process_time() - self._t0


LAST_DRAIN_CPU = Cpu()  # the projector's CPU in the last drain (the appends left out)


async def drain(settings: Settings, events: list[Event]) -> float:
    appender = KafkaEventAppender(settings, codec_for(settings), timeout_s=120)
    await appender.start()
    for i in range(0, len(events), 1000):
        await appender.append_many(events[i : i + 1000])
    await appender.stop()
    stop = asyncio.Event()
    with LAST_DRAIN_CPU:
        task = asyncio.create_task(run_projector(settings, stop))
        conn = await asyncpg.connect(settings.postgres_dsn)
        started, folded = await _first_fold(conn, settings)  # the clock starts after the join
        await _poll(lambda: caught_up(settings))
        took = time.perf_counter() - started
    await conn.close()
    stop.set()
    await task
    return (len(events) - folded) / took


async def _first_fold(conn: asyncpg.Connection, settings: Settings) -> tuple[float, int]:
    while True:
        try:
            at = await positions(conn, schema=settings.projections_schema)
        except asyncpg.UndefinedTableError:
            at = {}
        if at:
            return time.perf_counter(), sum(v[0] for v in at.values())
        await asyncio.sleep(0.02)


async def _poll(check: Callable[[], Awaitable[bool]]) -> None:
    """Wait until ``check`` holds (state lives in other processes: nothing to await)."""
    while not await check():  # noqa: ASYNC110 - polled across processes
        await asyncio.sleep(0.1)


async def lag_at_rate(settings: Settings, rate: int, seconds: int) -> list[float]:
    """Lag (append acknowledged -> folded in Postgres) of every event at ``rate``/s."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_projector(settings, stop))
    await _poll(lambda: caught_up(settings))
    appender = KafkaEventAppender(settings, codec_for(settings), timeout_s=60)
    await appender.start()
    sent: list[tuple[AppendResult, float]] = []
    events = events_for(rate * seconds // 6 + 1, f"lag{uuid.uuid4().hex[:4]}-")
    tick = 0.1
    per_tick = max(int(rate * tick), 1)
    t0 = time.perf_counter()
    conn = await asyncpg.connect(settings.postgres_dsn)
    lags: list[float] = []
    pending: list[tuple[AppendResult, float]] = []
    appended = asyncio.Event()

    async def watch() -> None:
        # Every 10 ms, beside the appends: checking only between ticks measured the
        # 100 ms tick, not the lag.
        while pending or not appended.is_set():
            await _collect(conn, settings, pending, lags)
            await asyncio.sleep(0.01)

    watcher = asyncio.create_task(watch())
    for i in range(0, len(events), per_tick):
        results = await appender.append_many(events[i : i + per_tick])
        acked = time.perf_counter()
        pending += [(r, acked) for r in results]
        sent += [(r, acked) for r in results]
        await asyncio.sleep(max(0.0, t0 + (i // per_tick + 1) * tick - time.perf_counter()))
    appended.set()
    await watcher
    await conn.close()
    await appender.stop()
    stop.set()
    await task
    return lags


async def _collect(
    conn: asyncpg.Connection,
    settings: Settings,
    pending: list[tuple[AppendResult, float]],
    lags: list[float],
) -> None:
    at = await positions(conn, schema=settings.projections_schema)
    now = time.perf_counter()
    keep = []
    for r, acked in pending:
        pos = at.get((r.topic, r.partition))
        if pos and pos[0] > r.offset:
            lags.append(now - acked)
        else:
            keep.append((r, acked))
    pending[:] = keep


LAST_RAW_CPU_US = [0.0]  # CPU microseconds per record of the last raw consume


async def raw_consume_rate(settings: Settings) -> float:
    topics = [f"{settings.topic_prefix}.runs.v1"]
    ends = await end_offsets(settings.kafka_bootstrap, topics)
    started = time.perf_counter()
    n = 0
    with Cpu() as cpu:
        async for _t, _p, raws in replay(
            settings.kafka_bootstrap, {k: (0, v) for k, v in ends.items()}, batch=10_000
        ):
            n += len(raws)
    LAST_RAW_CPU_US[0] = 1e6 * cpu.seconds / max(n, 1)
    return n / (time.perf_counter() - started)


async def commit_ms(settings: Settings, n: int = 50) -> dict[str, float]:
    """p50 of a one-row upsert's transaction, with synchronous commit on and off: what
    each projection transaction waits for while it holds the shared KPI rows."""
    conn = await asyncpg.connect(settings.postgres_dsn)
    table = f"{settings.projections_schema}_commit_probe"
    await conn.execute(f"CREATE TABLE IF NOT EXISTS {table} (k int PRIMARY KEY, v int)")
    out = {}
    try:
        for mode in ("on", "off"):
            took = []
            for _ in range(n):
                began = time.perf_counter()
                async with conn.transaction():
                    await conn.execute("SELECT set_config('synchronous_commit', $1, true)", mode)
                    await conn.execute(
                        f"INSERT INTO {table} VALUES (1, 1)"
                        f" ON CONFLICT (k) DO UPDATE SET v = {table}.v + 1"
                    )
                took.append(time.perf_counter() - began)
            out[mode] = round(pct(took, 50) * 1000, 2)
    finally:
        await conn.execute(f"DROP TABLE {table}")
        await conn.close()
    return out


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


async def main(args: argparse.Namespace) -> None:
    tag = "bench" + uuid.uuid4().hex[:8]
    settings = Settings(
        topic_prefix=tag, projections_schema=tag, projections_redis_prefix=tag, topic_partitions=6
    )
    await ensure_declared_topics(settings)
    backlog = events_for(args.runs, "t-")
    throughput = await drain(settings, backlog)
    print(f"sustained fold (Postgres + Redis, one projector): {throughput:,.0f} events/s")
    lags = await lag_at_rate(settings, args.rate, args.seconds)
    p50, p99 = pct(lags, 50) * 1000, pct(lags, 99) * 1000
    print(
        f"lag at {args.rate} events/s offered: p50 {p50:.0f} ms, p99 {p99:.0f} ms "
        f"({len(lags)} events)"
    )
    raw = await raw_consume_rate(settings)
    bare = await bare_fold(settings)
    with Cpu() as pg_cpu:
        pg = await rebuild_postgres(settings, swap=False)
    with Cpu() as rd_cpu:
        rd = await rebuild_redis(settings, swap=False)
    commits = await commit_ms(settings)
    fold_us = 1e6 * LAST_DRAIN_CPU.seconds / len(backlog)
    pg_us, rd_us = (1e6 * c.seconds / max(r.events, 1) for c, r in ((pg_cpu, pg), (rd_cpu, rd)))
    print(
        f"raw consume: {raw:,.0f} events/s; rebuild postgres {pg.events_per_s:,.0f} "
        f"events/s ({pg.events} events, verified={pg.equal}); rebuild redis "
        f"{rd.events_per_s:,.0f} events/s (verified={rd.equal})\n"
        f"bare fold (decode, one row and one hash field per event): {bare.events_per_s:,.0f}"
        f" events/s, {bare.cpu_us_per_event:.1f} us CPU per event\n"
        f"CPU per event (this process): fold into both {fold_us:.0f} us, rebuild postgres "
        f"{pg_us:.0f} us, rebuild redis {rd_us:.0f} us; raw consume {LAST_RAW_CPU_US[0]:.1f} us\n"
        f"Postgres commit p50: synchronous {commits['on']} ms, asynchronous (the projector's)"
        f" {commits['off']} ms"
    )
    print(
        json.dumps(
            {
                "bench": "projections",
                "events_backlog": len(backlog),
                "fold_events_per_s": round(throughput),
                "offered_rate": args.rate,
                "lag_p50_ms": round(p50, 1),
                "lag_p99_ms": round(p99, 1),
                "raw_consume_events_per_s": round(raw),
                "bare_fold_events_per_s": round(bare.events_per_s),
                "bare_fold_cpu_us_per_event": round(bare.cpu_us_per_event, 1),
                "rebuild_postgres_events_per_s": round(pg.events_per_s),
                "rebuild_redis_events_per_s": round(rd.events_per_s),
                "rebuild_verified": pg.equal and rd.equal,
                "fold_cpu_us_per_event": round(fold_us, 1),
                "rebuild_postgres_cpu_us_per_event": round(pg_us, 1),
                "rebuild_redis_cpu_us_per_event": round(rd_us, 1),
                "raw_consume_cpu_us_per_event": round(LAST_RAW_CPU_US[0], 1),
                "pg_commit_p50_ms_sync": commits["on"],
                "pg_commit_p50_ms_async": commits["off"],
            }
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=4000, help="runs in the backlog (~6 events)")
    parser.add_argument("--rate", type=int, default=500, help="offered events/s for the lag")
    parser.add_argument("--seconds", type=int, default=20)
    asyncio.run(main(parser.parse_args()))
