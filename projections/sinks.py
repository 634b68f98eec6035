"""The projector's handlers: the read models in Postgres and in Redis.

Each is a :class:`~streams.consumer.Handler` that applies a partition's batch exactly
once and keeps its own position: Postgres in ``projector_positions`` (same transaction),
Redis in its generation's position hash (same Lua script).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import asyncpg
import redis.exceptions

from projections.pg_store import PostgresProjection
from projections.redis_store import RedisProjection
from streams.consumer import Record
from streams.positions import PG_TRANSIENT

Partition = tuple[str, int]


class PostgresSink:
    """The Postgres read models over a pool and a schema."""

    name = "postgres"
    transient = PG_TRANSIENT

    def __init__(self, pool: asyncpg.Pool, projection: PostgresProjection) -> None:
        self._pool = pool
        self._projection = projection

    async def apply(self, topic: str, partition: int, records: Sequence[Record]) -> None:
        async with self._pool.acquire() as conn:
            await self._projection.apply(conn, topic, partition, records)

    async def resume_at(self, partitions: Sequence[Partition]) -> Mapping[Partition, int]:
        async with self._pool.acquire() as conn:
            return await self._projection.positions(conn)


class RedisSink:
    """The Redis live views of the live generation."""

    name = "redis"
    transient: tuple[type[BaseException], ...] = (
        OSError,
        TimeoutError,
        redis.exceptions.ConnectionError,
        redis.exceptions.TimeoutError,
        redis.exceptions.BusyLoadingError,
    )

    def __init__(self, projection: RedisProjection) -> None:
        self._projection = projection

    async def apply(self, topic: str, partition: int, records: Sequence[Record]) -> None:
        await self._projection.apply(topic, partition, records)

    async def resume_at(self, partitions: Sequence[Partition]) -> Mapping[Partition, int]:
        return {k: v[0] for k, v in (await self._projection.positions()).items()}
