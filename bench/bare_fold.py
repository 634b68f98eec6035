"""The bare fold: the least a projector can do per event, the baseline beside the
projector and the rebuild.

It reads the same topic with the same reader as the raw consume (``streams.replay``),
decodes each value to its Avro record (fastavro, no event dataclass), and per partition
batch writes, in one Postgres transaction with its position, one row per event (ids,
type, time and the event's fields as jsonb, through one unnest insert), and in one
Redis transaction one hash field per event (a single HSET for the batch) plus the
position. No read of current state, no run view, no KPIs, no exactly-once check, no
audit: what is left is the client libraries and the servers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from redis.asyncio import Redis

from omnihub.settings import Settings
from projections.migrate import quote_ident
from streams.codec import EventCodec
from streams.consumer import RawRecord
from streams.replay import end_offsets, replay
from streams.schema_registry import SchemaRegistry

BATCH = 2000  # records per partition batch


@dataclass
class BareFold:
    events: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # this process only

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    @property
    def cpu_us_per_event(self) -> float:
        return 1e6 * self.cpu_seconds / max(self.events, 1)


async def bare_fold(settings: Settings) -> BareFold:
    """Fold the whole runs topic of ``settings`` the bare way, timed."""
    codec = EventCodec(SchemaRegistry.from_dir(settings.schemas_dir))
    topic = f"{settings.topic_prefix}.runs.v1"
    ends = await end_offsets(settings.kafka_bootstrap, [topic])
    table = quote_ident(f"{settings.projections_schema}_bare")
    positions = quote_ident(f"{settings.projections_schema}_bare_positions")
    conn = await asyncpg.connect(settings.postgres_dsn)
    redis = Redis.from_url(settings.redis_url)
    prefix = f"{settings.projections_redis_prefix}:bare"
    await conn.execute(
        f"CREATE TABLE {table} (event_id text PRIMARY KEY, run_id text, event_type text,"
        f" occurred_at timestamptz, body jsonb);"
        f"CREATE TABLE {positions} (topic text, partition int, next_offset bigint,"
        f" PRIMARY KEY (topic, partition))"
    )
    out = BareFold()
    try:
        started, cpu = time.perf_counter(), time.process_time()
        async for t, p, raws in replay(
            settings.kafka_bootstrap, {k: (0, v) for k, v in ends.items()}, batch=BATCH
        ):
            rows = [_row(codec, raw) for raw in raws]
            await _write(conn, table, positions, t, p, raws[-1].offset + 1, rows)
            async with redis.pipeline(transaction=True) as pipe:
                pipe.hset(f"{prefix}:events", mapping={r[0]: r[2] for r in rows})
                pipe.hset(f"{prefix}:positions", f"{t}:{p}", raws[-1].offset + 1)
                await pipe.execute()
            out.events += len(raws)
        out.seconds = time.perf_counter() - started
        out.cpu_seconds = time.process_time() - cpu
    finally:
        await conn.execute(f"DROP TABLE IF EXISTS {table}, {positions}")
        await conn.close()
        await redis.delete(f"{prefix}:events", f"{prefix}:positions")
        await redis.aclose()
    return out


def _row(codec: EventCodec, raw: RawRecord) -> tuple[Any, ...]:
    _, record = codec.decode_record(raw.value or b"")  # fastavro, no event dataclass
    env = record.pop("envelope")
    body = json.dumps(record, default=str)
    return env["event_id"], env["run_id"], env["event_type"], env["occurred_at"], body


async def _write(
    conn: asyncpg.Connection,
    table: str,
    positions: str,
    topic: str,
    partition: int,
    next_offset: int,
    rows: Sequence[tuple[Any, ...]],
) -> None:
    async with conn.transaction():
        # Asynchronous commit, as the projector's transactions
        await conn.execute("SET LOCAL synchronous_commit = off")
        await conn.execute(
            f"INSERT INTO {table} SELECT * FROM"
            " unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::jsonb[])",
            *(list(col) for col in zip(*rows, strict=True)),
        )
        await conn.execute(
            f"INSERT INTO {positions} VALUES ($1, $2, $3)"
            " ON CONFLICT (topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset",
            topic,
            partition,
            next_offset,
        )
