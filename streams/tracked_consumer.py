"""A small exactly-once consumer for the gateway's processors.

Each relevant record is applied in one Postgres transaction together with the
processor's position in ``projector_positions`` (locked ``FOR UPDATE``), so a
redelivered record, a restart or a second instance changes nothing twice. Records of
types the processor ignores only move the position, once per batch. Partitions are
assigned manually (all of them): positions live in Postgres, not in a consumer group.

A record that cannot be decoded is sent to the dead-letter topic with the reason and
skipped; a failure to apply (Postgres or Kafka down) rolls back and is retried.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from domain.events import Event
from streams.codec import DecodeError, EventCodec
from streams.log_reader import partitions_of

log = logging.getLogger(__name__)

Handler = Callable[[asyncpg.Connection, Event], Awaitable[Callable[[], Awaitable[None]] | None]]
"""Applies one event in the open transaction; may return an action to run after commit."""


class TrackedConsumer:
    """Feeds every record of ``topics`` whose type is in ``types`` to ``handler``."""

    def __init__(
        self,
        name: str,
        *,
        bootstrap: str,
        pool: asyncpg.Pool,
        codec: EventCodec,
        topics: Sequence[str],
        types: Collection[str],
        handler: Handler,
        deadletter_topic: str,
    ) -> None:
        self.name = name
        self._bootstrap = bootstrap
        self._pool = pool
        self._codec = codec
        self._topics = list(topics)
        self._types = frozenset(types)
        self._handler = handler
        self._deadletter = deadletter_topic
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set; retries after failures."""
        while not stop.is_set():
            try:
                await self._session(stop)
            except Exception:
                log.exception("%s: failed; retrying from the stored positions", self.name)
                await asyncio.sleep(1.0)
            finally:
                await self._close()

    async def _session(self, stop: asyncio.Event) -> None:
        self._consumer = consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap, enable_auto_commit=False, group_id=None
        )
        self._producer = AIOKafkaProducer(bootstrap_servers=self._bootstrap, acks="all")
        await consumer.start()
        await self._producer.start()
        await self._assign(consumer)
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=300, max_records=200)
            for tp, messages in batch.items():
                await self._apply(tp, messages)

    async def _assign(self, consumer: AIOKafkaConsumer) -> None:
        # Asked of the cluster now: the consumer's own metadata cache misses topics created
        # after it started.
        parts = await partitions_of(self._bootstrap, self._topics)
        if not parts:
            raise RuntimeError(f"none of the topics {self._topics} exist yet")
        consumer.assign(parts)
        rows = await self._pool.fetch(
            "SELECT topic, partition, next_offset FROM projector_positions WHERE projector = $1",
            self.name,
        )
        stored = {(r["topic"], r["partition"]): r["next_offset"] for r in rows}
        for tp in parts:
            if (tp.topic, tp.partition) in stored:
                consumer.seek(tp, stored[(tp.topic, tp.partition)])
            else:
                await consumer.seek_to_beginning(tp)

    async def _apply(self, tp: TopicPartition, messages: Sequence[ConsumerRecord]) -> None:
        trailing = None
        for msg in messages:
            raw = dict(msg.headers or ()).get("event_type")
            if raw is not None and raw.decode() not in self._types:
                trailing = msg.offset
                continue
            await self._apply_one(tp, msg)
            trailing = None
        if trailing is not None:
            async with self._pool.acquire() as conn, conn.transaction():
                await self._position(conn, tp)
                await self._advance(conn, tp, trailing + 1)

    async def _apply_one(self, tp: TopicPartition, msg: ConsumerRecord) -> None:
        after: Callable[[], Awaitable[None]] | None = None
        async with self._pool.acquire() as conn, conn.transaction():
            if msg.offset < await self._position(conn, tp):
                return  # applied before
            try:
                event = self._codec.decode(msg.value or b"")
            except DecodeError as exc:
                await self._dead_letter(msg, exc)
                event = None
            if event is not None and event.EVENT_TYPE in self._types:
                after = await self._handler(conn, event)
            await self._advance(conn, tp, msg.offset + 1)
        if after is not None:
            await after()

    async def _position(self, conn: asyncpg.Connection, tp: TopicPartition) -> int:
        await conn.execute(
            "INSERT INTO projector_positions (projector, topic, partition, next_offset)"
            " VALUES ($1, $2, $3, 0) ON CONFLICT DO NOTHING",
            self.name,
            tp.topic,
            tp.partition,
        )
        value: int = await conn.fetchval(
            "SELECT next_offset FROM projector_positions WHERE projector = $1 AND topic = $2"
            " AND partition = $3 FOR UPDATE",
            self.name,
            tp.topic,
            tp.partition,
        )
        return value

    async def _advance(self, conn: asyncpg.Connection, tp: TopicPartition, offset: int) -> None:
        await conn.execute(
            "UPDATE projector_positions SET next_offset = GREATEST(next_offset, $4),"
            " applied_at = now() WHERE projector = $1 AND topic = $2 AND partition = $3",
            self.name,
            tp.topic,
            tp.partition,
            offset,
        )

    async def _dead_letter(self, msg: ConsumerRecord, exc: DecodeError) -> None:
        log.error(
            "%s: %s@%s/%s undecodable: %s", self.name, msg.topic, msg.partition, msg.offset, exc
        )
        assert self._producer is not None
        headers = [
            *(msg.headers or ()),
            ("deadletter_reason", exc.reason.encode()),
            ("deadletter_source", f"{msg.topic}/{msg.partition}@{msg.offset}".encode()),
            ("deadletter_processor", self.name.encode()),
        ]
        await self._producer.send_and_wait(
            self._deadletter, value=msg.value, key=msg.key, headers=headers
        )

    async def _close(self) -> None:
        for client in (self._consumer, self._producer):
            if client is not None:
                try:
                    await client.stop()
                except Exception:
                    log.exception("%s: closing a Kafka client failed", self.name)
        self._consumer = self._producer = None
