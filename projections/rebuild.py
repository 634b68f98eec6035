"""Rebuild a projection from the log beside the live one, verify it, swap it in.

The rebuild folds the log into a shadow (a Postgres schema, a Redis generation) with
the same code as the live projector, chasing the live projector's positions while it
keeps running. Then it stops the live writers briefly (a table lock on the live
positions in Postgres; a pause key in Redis), folds the last few records so both
stand at the same positions, compares row counts and content checksums, and swaps:
in one Postgres transaction, or by moving Redis's ``current`` pointer.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import asyncpg
from redis.asyncio import Redis

from omnihub.settings import Settings
from projections.checksum import CONTENT_TABLES, columns, table_sums
from projections.keyring import privacy_for
from projections.migrate import apply_migrations, projection_range, quote_ident
from projections.pg_store import PostgresProjection, positions
from projections.redis_store import RedisProjection
from projections.sinks import PostgresSink, RedisSink
from streams.codec import EventCodec
from streams.consumer import Handler, Pipeline, RawRecord
from streams.deadletter import DeadLetter
from streams.replay import Ranges, replay
from streams.schema_registry import SchemaRegistry
from streams.topology import PROJECTOR

CATCH_UP_ROUNDS = 10
REBUILD_BATCH = 10_000  # records per fetch: fewer transactions, loads and round trips
IN_FLIGHT = 3  # partition batches folded at once (the Postgres pool has one more)
FINAL_GAP = 2000  # records left to fold while live writers wait


class Progress(Protocol):
    """Where long work reports how far it is."""

    def add_total(self, n: int) -> None: ...

    def advance(self, n: int) -> None: ...


class _Quiet:
    def add_total(self, n: int) -> None:
        pass

    def advance(self, n: int) -> None:
        pass


class _CountingDeadLetters:
    """The live projector dead-lettered these already; a rebuild only skips them."""

    def __init__(self) -> None:
        self.count = 0

    async def send(self, letter: DeadLetter) -> None:
        self.count += 1


@dataclass
class RebuildReport:
    """What a rebuild did and found."""

    name: str
    events: int = 0
    seconds: float = 0.0
    positions: dict[str, int] = field(default_factory=dict)
    live: dict[str, Any] = field(default_factory=dict)
    rebuilt: dict[str, Any] = field(default_factory=dict)
    poison: int = 0
    equal: bool = False
    swapped: bool = False

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    @property
    def differences(self) -> list[str]:
        return [
            f"{k}: live {self.live.get(k)} rebuilt {self.rebuilt.get(k)}"
            for k in sorted(set(self.live) | set(self.rebuilt))
            if self.live.get(k) != self.rebuilt.get(k)
        ]


def _ranges(done: Mapping[tuple[str, int], int], target: Mapping[tuple[str, int], int]) -> Ranges:
    return {k: (done.get(k, 0), end) for k, end in target.items() if end > done.get(k, 0)}


def _gap(ranges: Ranges) -> int:
    return sum(end - start for start, end in ranges.values())


class _Folder:
    """Folds log ranges into one shadow sink, counting what it folded."""

    def __init__(self, settings: Settings, sink: Handler, progress: Progress) -> None:
        self._settings = settings
        self._dlq = _CountingDeadLetters()
        codec = EventCodec(SchemaRegistry.from_dir(settings.schemas_dir))
        self._pipeline = Pipeline(
            settings,
            PROJECTOR,
            codec,
            [sink],
            deadletters=self._dlq,
            announce_deadletters=False,
            privacy=privacy_for(settings, codec.registry),
        )
        self._progress = progress
        self.events = 0

    @property
    def poison(self) -> int:
        return self._dlq.count

    async def fold(self, ranges: Ranges) -> None:
        """Fold ``ranges`` in large batches, several partitions at once.

        Batches of one partition stay in order (each waits for the one before it);
        batches of different partitions overlap, so one partition's writes wait on
        Postgres or Redis while another's are decoded and folded.
        """
        self._progress.add_total(_gap(ranges))
        tails: dict[tuple[str, int], asyncio.Task[None]] = {}
        inflight: set[asyncio.Task[None]] = set()
        async for topic, partition, raws in replay(
            self._settings.kafka_bootstrap, ranges, batch=REBUILD_BATCH
        ):
            task = asyncio.create_task(
                self._after(tails.get((topic, partition)), topic, partition, raws)
            )
            tails[(topic, partition)] = task
            inflight.add(task)
            task.add_done_callback(inflight.discard)
            if len(inflight) >= IN_FLIGHT:
                await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
        await asyncio.gather(*tails.values())

    async def _after(
        self, before: asyncio.Task[None] | None, topic: str, partition: int, raws: list[RawRecord]
    ) -> None:
        if before is not None:
            await before
        await self._pipeline.process(topic, partition, raws)
        self.events += len(raws)
        self._progress.advance(len(raws))


async def _pg_offsets(conn: asyncpg.Connection, schema: str) -> dict[tuple[str, int], int]:
    return {k: v[0] for k, v in (await positions(conn, schema=schema)).items()}


async def rebuild_postgres(
    settings: Settings,
    *,
    swap: bool = True,
    accept_changes: bool = False,
    progress: Progress | None = None,
) -> RebuildReport:
    """Rebuild the Postgres read models in a shadow schema; swap if verified.

    With ``swap=False`` it only verifies. A rebuild that differs from the live
    projection is swapped in only with ``accept_changes`` (the fold changed on purpose).
    """
    live = settings.projections_schema
    shadow = f"{live}__rebuild_{uuid.uuid4().hex[:8]}"
    report = RebuildReport("postgres")
    started = time.perf_counter()
    pool = await asyncpg.create_pool(settings.postgres_dsn, min_size=2, max_size=IN_FLIGHT + 1)
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn, schema=live)
            await apply_migrations(conn, schema=shadow, select=projection_range)
            folder = _Folder(
                settings,
                PostgresSink(pool, PostgresProjection(schema=shadow)),
                progress or _Quiet(),
            )
            for _ in range(CATCH_UP_ROUNDS):
                ranges = _ranges(await _pg_offsets(conn, shadow), await _pg_offsets(conn, live))
                if _gap(ranges) <= FINAL_GAP:
                    break
                await folder.fold(ranges)
            await _pg_verify_and_swap(
                conn, folder, live, shadow, report, swap and accept_changes, swap
            )
            await conn.execute(f"DROP SCHEMA {quote_ident(shadow)} CASCADE")
        report.events, report.poison = folder.events, folder.poison
    finally:
        await pool.close()
    report.seconds = time.perf_counter() - started
    return report


async def _pg_verify_and_swap(
    conn: asyncpg.Connection,
    folder: _Folder,
    live: str,
    shadow: str,
    report: RebuildReport,
    force: bool,
    swap: bool,
) -> None:
    async with conn.transaction():
        # Live writers lock their position row first, so this holds them off cleanly.
        await conn.execute(f"LOCK TABLE {quote_ident(live)}.projector_positions IN EXCLUSIVE MODE")
        target = await _pg_offsets(conn, live)
        await folder.fold(_ranges(await _pg_offsets(conn, shadow), target))
        report.positions = {f"{t}:{p}": o for (t, p), o in sorted(target.items())}
        rebuilt_at = await _pg_offsets(conn, shadow)
        report.live = {
            k: (v.rows, v.md5)
            for k, v in (await table_sums(conn, live, column_schema=shadow)).items()
        }
        report.rebuilt = {k: (v.rows, v.md5) for k, v in (await table_sums(conn, shadow)).items()}
        report.live["positions"] = sorted((k, v) for k, v in target.items() if v)
        report.rebuilt["positions"] = sorted((k, v) for k, v in rebuilt_at.items() if v)
        report.equal = not report.differences
        if swap and (report.equal or force):
            await _copy_into_live(conn, live, shadow)
            report.swapped = True


async def _copy_into_live(conn: asyncpg.Connection, live: str, shadow: str) -> None:
    lv, sh = quote_ident(live), quote_ident(shadow)
    for table in (*CONTENT_TABLES, "projector_positions"):
        cols = ", ".join(quote_ident(c) for c in await columns(conn, shadow, table))
        where = " WHERE projector = 'postgres'" if table == "projector_positions" else ""
        await conn.execute(f"DELETE FROM {lv}.{table}{where}")
        await conn.execute(
            f"INSERT INTO {lv}.{table} ({cols}) SELECT {cols} FROM {sh}.{table}{where}"
        )


async def rebuild_redis(
    settings: Settings,
    *,
    swap: bool = True,
    accept_changes: bool = False,
    progress: Progress | None = None,
) -> RebuildReport:
    """Rebuild the Redis views in a new generation; move ``current`` to it if verified."""
    redis = Redis.from_url(settings.redis_url, socket_timeout=30)
    report = RebuildReport("redis")
    started = time.perf_counter()
    try:
        live = RedisProjection.of(redis, settings)
        gen = f"r{uuid.uuid4().hex[:8]}"
        shadow = RedisProjection.of(redis, settings, gen)
        folder = _Folder(settings, RedisSink(shadow), progress or _Quiet())
        for _ in range(CATCH_UP_ROUNDS):
            ranges = _ranges(await _redis_offsets(shadow), await _redis_offsets(live))
            if _gap(ranges) <= FINAL_GAP:
                break
            await folder.fold(ranges)
        ks = await live.keyspace()
        await redis.set(ks.paused, gen, px=120_000)  # expires if this process dies
        try:
            target = await _redis_offsets(live)
            await folder.fold(_ranges(await _redis_offsets(shadow), target))
            report.positions = {f"{t}:{p}": o for (t, p), o in sorted(target.items())}
            now = datetime.now(UTC)  # one instant decides what is past due in both
            report.live = {"views": await live.checksum(now), "positions": sorted(target.items())}
            report.rebuilt = {
                "views": await shadow.checksum(now),
                "positions": sorted((await _redis_offsets(shadow)).items()),
            }
            report.equal = not report.differences
            report.swapped = swap and (report.equal or accept_changes)
            if report.swapped:
                await redis.set(ks.pointer, gen)
        finally:
            await redis.delete(ks.paused)
        await _drop_generation(
            redis, ks.pattern if report.swapped else (await shadow.keyspace()).pattern
        )
        report.events, report.poison = folder.events, folder.poison
    finally:
        await redis.aclose()
    report.seconds = time.perf_counter() - started
    return report


async def _redis_offsets(projection: RedisProjection) -> dict[tuple[str, int], int]:
    return {k: v[0] for k, v in (await projection.positions()).items()}


async def _drop_generation(redis: Redis, pattern: str) -> None:
    batch: list[Any] = []
    async for key in redis.scan_iter(pattern, 1000):
        batch.append(key)
        if len(batch) >= 1000:
            await redis.unlink(*batch)
            batch = []
    if batch:
        await redis.unlink(*batch)
