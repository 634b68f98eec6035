"""Where a consumer is, kept in Postgres beside what it wrote: exactly-once effects.

A handler that writes Postgres locks its partition's position row, skips what is at or
below it, writes its change, moves the position and commits, all in one transaction.
A redelivered batch, a restarted process or a second instance that briefly owns the
same partition during a rebalance therefore changes nothing twice; Kafka's committed
offsets are only a hint of where to resume.

The position SQL lives here only. :class:`PgTracked` is the whole handler for the
common case: one function applied to each event of a batch.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime

import asyncpg

from domain.events import Event
from streams.consumer import Record

# Failures of Postgres itself, not of the record: retried, never dead-lettered.
PG_TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
)

Partition = tuple[str, int]


class PgPositions:
    """A consumer's positions in ``table`` (``projector_positions`` unless told)."""

    def __init__(self, consumer: str, table: str = "projector_positions") -> None:
        self.consumer = consumer
        self.table = table

    async def load(self, conn: asyncpg.Connection | asyncpg.Pool) -> dict[Partition, int]:
        """``(topic, partition) -> next offset`` of every partition applied so far."""
        rows = await conn.fetch(
            f"SELECT topic, partition, next_offset FROM {self.table} WHERE projector = $1",
            self.consumer,
        )
        return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}

    async def lock(self, conn: asyncpg.Connection, topic: str, partition: int) -> int:
        """The partition's next offset, its row locked until the transaction ends.

        The row lock serialises every writer of this partition (and a rebuild's swap).
        """
        await conn.execute(
            f"INSERT INTO {self.table} (projector, topic, partition, next_offset)"
            " VALUES ($1, $2, $3, 0) ON CONFLICT DO NOTHING",
            self.consumer,
            topic,
            partition,
        )
        value: int = await conn.fetchval(
            f"SELECT next_offset FROM {self.table}"
            " WHERE projector = $1 AND topic = $2 AND partition = $3 FOR UPDATE",
            self.consumer,
            topic,
            partition,
        )
        return value

    async def advance(
        self,
        conn: asyncpg.Connection,
        topic: str,
        partition: int,
        next_offset: int,
        event_time: datetime | None = None,
    ) -> None:
        """Move the locked position forward (never back) in the open transaction."""
        await conn.execute(
            f"UPDATE {self.table} SET next_offset = GREATEST(next_offset, $4),"
            " applied_at = now(), event_time = coalesce($5, event_time)"
            " WHERE projector = $1 AND topic = $2 AND partition = $3",
            self.consumer,
            topic,
            partition,
            next_offset,
            event_time,
        )


After = Callable[[], Awaitable[None]]
EventFn = Callable[[asyncpg.Connection, Event], Awaitable[After | None]]
"""Applies one event in the open transaction; may return an action to run after commit."""


class PgTracked:
    """A handler applying ``fn`` to each new event of a batch, with the position, in one
    transaction; actions ``fn`` returns run after the commit (e.g. a Redis mirror)."""

    transient = PG_TRANSIENT

    def __init__(
        self,
        name: str,
        pool: asyncpg.Pool,
        fn: EventFn,
        *,
        positions: PgPositions | None = None,
    ) -> None:
        self.name = name
        self._pool = pool
        self._fn = fn
        self.positions = positions or PgPositions(name)

    async def resume_at(self, partitions: Sequence[Partition]) -> Mapping[Partition, int]:
        return await self.positions.load(self._pool)

    async def apply(self, topic: str, partition: int, records: Sequence[Record]) -> None:
        afters: list[After] = []
        async with self._pool.acquire() as conn, conn.transaction():
            start = await self.positions.lock(conn, topic, partition)
            for record in records:
                if record.offset >= start and record.event is not None:
                    after = await self._fn(conn, record.event)
                    if after is not None:
                        afters.append(after)
            await self.positions.advance(conn, topic, partition, records[-1].offset + 1)
        for after in afters:
            await after()
