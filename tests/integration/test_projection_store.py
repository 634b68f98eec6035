"""The projector against real Kafka, Postgres and Redis (in-process worker).

Each test has its own topics, Postgres schema, Redis prefix and consumer group.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from apps.projector import run_projector
from domain import ids
from domain.events import (
    ApprovalGranted,
    ApprovalRequested,
    Event,
    GoalAssessed,
    GoalReceived,
    PlanGenerated,
    PlanStep,
    RunCancelled,
    RunCompleted,
    RunFailed,
    StepCompensated,
    StepCompleted,
    StepFailed,
    StepStarted,
)
from omnihub.settings import Settings
from projections.checksum import table_sums
from projections.pg_store import positions
from projections.rebuild import rebuild_postgres, rebuild_redis
from projections.redis_store import RedisProjection
from streams.admin import ensure_declared_topics
from streams.codec import EventCodec
from streams.producer import KafkaEventAppender
from streams.replay import end_offsets, replay
from streams.schema_registry import SchemaRegistry
from streams.topics import Topic, topic_name

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def isolated_settings(**extra: object) -> Settings:
    """Settings with this test's own topics, schema, Redis prefix and group."""
    tag = "p" + uuid.uuid4().hex[:10]
    # Runs here end at T0, in the past: a long retention keeps them in the live views,
    # so the checksums compare them (tests/integration/test_redis_live.py covers expiry).
    extra = {"live_retention_s": 3650 * 86400.0, **extra}
    return Settings(
        topic_prefix=tag,
        projections_schema=tag,
        projections_redis_prefix=tag,
        topic_partitions=3,
        **extra,
    )  # type: ignore[arg-type]


def story(run_id: str, tenant: str, kind: int, at: datetime = T0) -> list[Event]:
    """A realistic run: happy, cached, approved, failed with compensation, or cancelled."""
    n = 0

    def env(cls: type[Event], *disc: str | int) -> object:
        nonlocal n
        n += 1
        return ids.envelope(
            cls,
            run_id=run_id,
            tenant_id=tenant,
            actor="saga",
            correlation_id=run_id,
            discriminator=disc,
            occurred_at=at + timedelta(seconds=n),
        )

    step = PlanStep("s1", "http_call", "{}", (), 0.2, "undo")
    evs: list[Event] = [
        GoalReceived(env(GoalReceived), f"goal {run_id}", {}, None),  # type: ignore[arg-type]
        GoalAssessed(env(GoalAssessed), "g", 0.1, (), True),  # type: ignore[arg-type]
        PlanGenerated(env(PlanGenerated), "p", (step,), "rules", kind == 1),  # type: ignore[arg-type]
        StepStarted(env(StepStarted, "s1", 1), "s1", "http_call", 1),  # type: ignore[arg-type]
    ]
    if kind == 2:
        evs += [
            ApprovalRequested(
                env(ApprovalRequested, "a"),
                f"ap-{run_id}",
                "s1",
                "wire",
                0.9,  # type: ignore[arg-type]
                ("big",),
                at + timedelta(hours=1),
            ),
            ApprovalGranted(env(ApprovalGranted, "a"), f"ap-{run_id}", "s1", "alice"),
        ]  # type: ignore[arg-type]
    if kind == 3:
        return [
            *evs,
            StepFailed(env(StepFailed, "s1", 1), "s1", "http_call", 1, "E", "x", False, True),  # type: ignore[arg-type]
            StepCompensated(env(StepCompensated, "s1"), "s1", "http_call", "undo", "{}"),  # type: ignore[arg-type]
            RunFailed(env(RunFailed), "s1 failed", "s1", ("s1",), 4000),
        ]  # type: ignore[arg-type]
    if kind == 4:
        return [*evs, RunCancelled(env(RunCancelled), "asked", "user:x", ())]  # type: ignore[arg-type]
    return [
        *evs,
        StepCompleted(env(StepCompleted, "s1"), "s1", "http_call", 1, "{}", 7),  # type: ignore[arg-type]
        RunCompleted(env(RunCompleted), 1, 1000 + 10 * len(run_id), "{}"),
    ]  # type: ignore[arg-type]


def stories(count: int, tag: str = "") -> list[list[Event]]:
    return [story(f"run-{tag}{i}", f"tenant-{i % 3}", i % 5) for i in range(count)]


def codec_for(settings: Settings) -> EventCodec:
    return EventCodec(SchemaRegistry.from_dir(settings.schemas_dir))


async def append(settings: Settings, events: list[Event]) -> None:
    await ensure_declared_topics(settings)
    appender = KafkaEventAppender(settings, codec_for(settings), timeout_s=60)
    await appender.start()
    try:
        for i in range(0, len(events), 500):
            await appender.append_many(events[i : i + 500])
    finally:
        await appender.stop()


async def wait_for(check: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.3)


async def caught_up(settings: Settings) -> bool:
    """Both projections stand at the end of every partition of the projected topics."""
    topics = [topic_name(settings, t) for t in (Topic.RUNS, Topic.AUDIT)]
    ends = {k: v for k, v in (await end_offsets(settings.kafka_bootstrap, topics)).items() if v}
    conn = await asyncpg.connect(settings.postgres_dsn)
    redis = Redis.from_url(settings.redis_url)
    try:
        pg = {
            k: v[0]
            for k, v in (await positions(conn, schema=settings.projections_schema)).items()
            if v[0]
        }
        rd = {
            k: v[0]
            for k, v in (await RedisProjection.of(redis, settings).positions()).items()
            if v[0]
        }
        return pg == ends and rd == ends
    except asyncpg.UndefinedTableError:
        return False
    finally:
        await conn.close()
        await redis.aclose()


@contextlib.asynccontextmanager
async def running_projector(settings: Settings) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(run_projector(settings, stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


async def pg_sums(settings: Settings) -> dict[str, object]:
    conn = await asyncpg.connect(settings.postgres_dsn)
    try:
        return {
            k: (v.rows, v.md5)
            for k, v in (await table_sums(conn, settings.projections_schema)).items()
        }
    finally:
        await conn.close()


async def redis_sum(settings: Settings) -> tuple[int, str]:
    redis = Redis.from_url(settings.redis_url)
    try:
        return await RedisProjection.of(redis, settings).checksum()
    finally:
        await redis.aclose()


async def fetch(settings: Settings, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(settings.postgres_dsn)
    try:
        await conn.execute(f'SET search_path TO "{settings.projections_schema}"')
        rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
        return rows
    finally:
        await conn.close()


async def test_poison_goes_to_deadletter_with_reason_and_the_next_event_applies() -> None:
    settings = isolated_settings()
    await ensure_declared_topics(settings)
    runs = topic_name(settings, Topic.RUNS)
    good = story("run-good", "tenant-p", 0)
    # A run id no btree index can hold (random, so compression cannot save it): Postgres
    # refuses the row, so the fold fails there. (NUL text, once the example, is escaped.)
    huge = base64.b64encode(os.urandom(9000)).decode()
    nul = GoalReceived(
        ids.envelope(
            GoalReceived,
            run_id=huge,
            tenant_id="tenant-p",
            actor="api",
            correlation_id="x",
            discriminator=("big",),
        ),
        "bad goal",
        {},
        None,
    )
    codec = codec_for(settings)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        key = b"run-good"  # same partition as the good run, before it
        await producer.send_and_wait(runs, b"not avro at all", key=key)
        await producer.send_and_wait(runs, b"\xc3\x01" + b"\x00" * 8 + b"body", key=key)
        await producer.send_and_wait(runs, codec.encode(nul), key=key)
    finally:
        await producer.stop()
    await append(settings, good)
    async with running_projector(settings):
        await wait_for(lambda: caught_up(settings), 90, "projections to catch up")
    rows = await fetch(settings, "SELECT status, goal, event_count FROM runs")
    assert [tuple(r) for r in rows] == [("completed", "goal run-good", len(good))]
    dlq = topic_name(settings, Topic.DEADLETTER)
    ends = await end_offsets(settings.kafka_bootstrap, [dlq])
    letters = [
        dict(r.headers)
        async for _t, _p, batch in replay(
            settings.kafka_bootstrap, {k: (0, v) for k, v in ends.items()}
        )
        for r in batch
    ]
    reasons = sorted(h["dlq.reason"].decode() for h in letters)
    assert reasons == ["bad_header", "fold_failed:postgres", "unknown_schema"]
    sources = {h["dlq.reason"].decode(): h["dlq.source"].decode() for h in letters}
    assert sources["bad_header"].startswith(f"{runs}:") and sources["bad_header"].endswith(":0")
    assert "ProgramLimitExceeded" in next(
        h["dlq.detail"].decode() for h in letters if h["dlq.reason"] == b"fold_failed:postgres"
    )


async def test_duplicated_and_reordered_across_runs_streams_give_the_same_projections() -> None:
    plain, messy = isolated_settings(), isolated_settings()
    runs = stories(40)
    in_order = [e for r in runs for e in r]
    rng = random.Random(3)
    queues = [list(r) for r in runs]
    shuffled: list[Event] = []
    while any(queues):
        q = rng.choice([q for q in queues if q])
        shuffled.append(q.pop(0))
        if rng.random() < 0.2:  # a redelivered fact, later in the stream
            shuffled.append(shuffled[rng.randrange(len(shuffled))])
    assert len(shuffled) > len(in_order)
    await asyncio.gather(append(plain, in_order), append(messy, shuffled))
    async with running_projector(plain), running_projector(messy):
        await wait_for(lambda: caught_up(plain), 120, "the plain stream")
        await wait_for(lambda: caught_up(messy), 120, "the messy stream")
    assert await pg_sums(plain) == await pg_sums(messy)
    assert await redis_sum(plain) == await redis_sum(messy)
    kpis = await fetch(
        plain,
        "SELECT sum(goals), sum(completions), sum(failures),"
        " sum(cancellations), sum(compensations), sum(cache_hits) FROM kpi_minute",
    )
    assert tuple(kpis[0]) == (40, 24, 8, 8, 8, 8)  # kinds 0-2 complete


async def test_rebuild_while_events_flow_matches_live_and_swaps() -> None:
    settings = isolated_settings()
    first = [e for r in stories(150) for e in r]
    second = [e for r in stories(150, "x") for e in r]
    await append(settings, first)
    async with running_projector(settings):
        await wait_for(lambda: caught_up(settings), 120, "the first 150 runs")
        more = asyncio.create_task(append(settings, second))
        pg = await rebuild_postgres(settings)
        rd = await rebuild_redis(settings)
        await more
        assert pg.equal and pg.swapped, pg.differences
        assert rd.equal and rd.swapped, rd.differences
        assert pg.events > 0 and rd.events > 0
        await wait_for(lambda: caught_up(settings), 120, "the projector after the swaps")
    again = await rebuild_postgres(settings, swap=False)
    assert again.equal and not again.swapped
    assert again.events == len(first) + len(second)  # a verify refolds the whole log
    assert (await rebuild_redis(settings, swap=False)).equal
    counts = await fetch(settings, "SELECT count(*) FROM runs")
    assert counts[0][0] == 300
