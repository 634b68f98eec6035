"""Folds the log into the plan cache, exactly once.

Reads ``plan_generated`` from the runs topic and ``plan_cache_invalidated`` /
``plan_template_shared`` from the control topic, every partition, from the positions
stored in ``plan_cache_positions``. A partition's batch is embedded first (outside any
transaction), then applied in one transaction together with the new position, so a
redelivery, a restart or a second instance changes nothing twice. Undecodable records
go to the dead-letter topic with the reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import timedelta

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from domain.events import Event, PlanCacheInvalidated, PlanGenerated, PlanTemplateShared
from omnihub.settings import Settings
from projections.plan_cache.embedder import Embedder
from projections.plan_cache.fold import StoredPlan, stored_plan
from projections.plan_cache.store import PgPlanCacheStore
from streams.codec import DecodeError, EventCodec
from streams.log_reader import partitions_of
from streams.topics import Topic, topic_name

log = logging.getLogger(__name__)

TYPES = frozenset(t.EVENT_TYPE for t in (PlanGenerated, PlanCacheInvalidated, PlanTemplateShared))


class PlanCacheProjector:
    """The plan cache's projector; ``name`` keys its stored positions."""

    def __init__(
        self,
        settings: Settings,
        store: PgPlanCacheStore,
        embedder: Embedder,
        codec: EventCodec,
        *,
        name: str = "plan-cache",
    ) -> None:
        self.name = name
        self._settings = settings
        self.store = store
        self._embedder = embedder
        self._codec = codec
        self._ttl = timedelta(seconds=settings.plan_cache_ttl_s)
        self._topics = [topic_name(settings, Topic.RUNS), topic_name(settings, Topic.CONTROL)]
        self._dlq = topic_name(settings, Topic.DEADLETTER)

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the log until ``stop`` is set; retries from the stored positions."""
        while not stop.is_set():
            try:
                await self._session(stop)
            except Exception:
                log.exception("%s: failed; retrying from the stored positions", self.name)
                await asyncio.sleep(1.0)

    async def catch_up(self) -> None:
        """Apply everything up to the log's end as of now, then return."""
        await self._session(None)

    async def _session(self, stop: asyncio.Event | None) -> None:
        boot = self._settings.kafka_bootstrap
        consumer = AIOKafkaConsumer(bootstrap_servers=boot, enable_auto_commit=False)
        producer = AIOKafkaProducer(bootstrap_servers=boot, acks="all")
        await consumer.start()
        await producer.start()
        try:
            parts = await self._assign(consumer)
            ends = await consumer.end_offsets(parts) if stop is None else {}
            while stop is None or not stop.is_set():
                if stop is None and await _reached(consumer, ends):
                    return
                batch = await consumer.getmany(timeout_ms=300, max_records=500)
                for tp, records in batch.items():
                    await self.apply(tp, records, producer)
        finally:
            await consumer.stop()
            await producer.stop()

    async def _assign(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        parts = await _partitions(self._settings.kafka_bootstrap, self._topics)
        consumer.assign(parts)
        rows = await self.store.pool.fetch(
            f"SELECT topic, partition, next_offset FROM {self.store.positions}"
            " WHERE projector = $1",
            self.name,
        )
        stored = {TopicPartition(r["topic"], r["partition"]): r["next_offset"] for r in rows}
        for tp in parts:
            if tp in stored:
                consumer.seek(tp, stored[tp])
            else:
                await consumer.seek_to_beginning(tp)
        return parts

    async def apply(
        self, tp: TopicPartition, records: Sequence[ConsumerRecord], producer: AIOKafkaProducer
    ) -> None:
        """Apply one partition's records (in offset order) with the position, atomically."""
        if not records:
            return
        events = [(r.offset, await self._decode(r, producer)) for r in records]
        plans = {
            offset: plan
            for offset, event in events
            if isinstance(event, PlanGenerated) and (plan := stored_plan(event, self._ttl))
        }
        templates = [p.template for p in plans.values()]
        vectors = dict(zip(plans, await self._embedder.embed(templates), strict=True))
        async with self.store.pool.acquire() as conn, conn.transaction():
            start = await self._position(conn, tp)
            for offset, event in events:
                if offset >= start and event is not None:
                    await self._fold(conn, event, plans.get(offset), vectors.get(offset))
            await conn.execute(
                f"UPDATE {self.store.positions} SET next_offset = $4"
                " WHERE projector = $1 AND topic = $2 AND partition = $3",
                self.name,
                tp.topic,
                tp.partition,
                max(records[-1].offset + 1, start),
            )

    async def _fold(
        self, conn: asyncpg.Connection, event: Event, plan: StoredPlan | None, vector: object
    ) -> None:
        env = event.envelope
        if plan is not None:
            await self.store.put(conn, plan, vector)
        elif isinstance(event, PlanCacheInvalidated):
            template = event.template if event.scope == "template" else None
            if event.scope == "template" and not template:
                return  # a template-scoped invalidation naming no template drops nothing
            await self.store.invalidate(conn, env.tenant_id, template, env.occurred_at)
        elif isinstance(event, PlanTemplateShared):
            await self.store.share(
                conn,
                env.tenant_id,
                event.template,
                event.shared_with,
                env.occurred_at,
                env.event_id,
            )

    async def _decode(self, record: ConsumerRecord, producer: AIOKafkaProducer) -> Event | None:
        kind = dict(record.headers or ()).get("event_type")
        if kind is not None and kind.decode() not in TYPES:
            return None  # not ours: skipped without decoding
        try:
            event = self._codec.decode(record.value or b"")
        except DecodeError as exc:
            await self._dead_letter(record, producer, exc)
            return None
        return event if event.EVENT_TYPE in TYPES else None

    async def _dead_letter(
        self, record: ConsumerRecord, producer: AIOKafkaProducer, exc: Exception
    ) -> None:
        source = f"{record.topic}:{record.partition}:{record.offset}"
        log.warning("%s: dead-lettering %s: %s", self.name, source, exc)
        headers = [
            *(record.headers or ()),
            ("dlq.reason", b"undecodable"),
            ("dlq.detail", str(exc)[:2000].encode()),
            ("dlq.source", source.encode()),
            ("dlq.processor", self.name.encode()),
        ]
        await producer.send_and_wait(
            self._dlq, value=record.value, key=source.encode(), headers=headers
        )

    async def _position(self, conn: asyncpg.Connection, tp: TopicPartition) -> int:
        await conn.execute(
            f"INSERT INTO {self.store.positions} (projector, topic, partition, next_offset)"
            " VALUES ($1, $2, $3, 0) ON CONFLICT DO NOTHING",
            self.name,
            tp.topic,
            tp.partition,
        )
        value: int = await conn.fetchval(
            f"SELECT next_offset FROM {self.store.positions} WHERE projector = $1"
            " AND topic = $2 AND partition = $3 FOR UPDATE",
            self.name,
            tp.topic,
            tp.partition,
        )
        return value


async def _reached(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    return all([await consumer.position(tp) >= end for tp, end in ends.items()])


async def _partitions(
    bootstrap: str, topics: Sequence[str], wait_s: float = 10.0
) -> list[TopicPartition]:
    """Every partition of ``topics``, waiting out metadata that lags a topic's creation."""
    deadline = asyncio.get_running_loop().time() + wait_s
    while True:
        parts = await partitions_of(bootstrap, topics)
        missing = set(topics) - {tp.topic for tp in parts}
        if not missing:
            return parts
        if asyncio.get_running_loop().time() > deadline:
            raise RuntimeError(f"topics without partitions: {sorted(missing)}")
        await asyncio.sleep(0.2)
