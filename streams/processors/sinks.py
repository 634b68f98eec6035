"""The projector's sinks: Postgres (one pooled connection per batch) and Redis."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from projections.pg_store import ApplyResult, PostgresProjection, Record
from projections.redis_store import RedisProjection


class PostgresSink:
    """:class:`~streams.processors.projector.Sink` over a pool and a schema."""

    name = "postgres"

    def __init__(self, pool: asyncpg.Pool, projection: PostgresProjection) -> None:
        self._pool = pool
        self._projection = projection

    async def apply(self, topic: str, partition: int, records: Sequence[Record]) -> ApplyResult:
        async with self._pool.acquire() as conn:
            return await self._projection.apply(conn, topic, partition, records)


class RedisSink:
    """:class:`~streams.processors.projector.Sink` over the live Redis generation."""

    name = "redis"

    def __init__(self, projection: RedisProjection) -> None:
        self._projection = projection

    async def apply(self, topic: str, partition: int, records: Sequence[Record]) -> ApplyResult:
        return await self._projection.apply(topic, partition, records)
