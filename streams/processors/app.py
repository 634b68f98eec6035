"""The projector process: a faust app whose agent folds run and audit events.

Composition root of ``omnihub projector run``: :func:`run_projector` opens the clients
(after applying migrations and declaring topics), builds the faust app around a
:class:`~streams.processors.projector.Projector` and runs its worker until SIGTERM.
Nothing is created at import time.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import faust
from redis.asyncio import Redis

from omnihub.readiness import mark_ready
from omnihub.settings import Settings
from projections.migrate import apply_migrations
from projections.pg_store import PostgresProjection
from projections.redis_store import RedisProjection
from streams.admin import ensure_declared_topics
from streams.codec import EventCodec
from streams.processors.deadletter import KafkaDeadLetterWriter
from streams.processors.projector import Projector, RawRecord, Sink
from streams.processors.sinks import PostgresSink, RedisSink
from streams.schema_registry import SchemaRegistry
from streams.topics import Topic, topic_name

log = logging.getLogger(__name__)

PROJECTED_TOPICS = (Topic.RUNS, Topic.AUDIT)


def group_id(settings: Settings) -> str:
    """The projector's consumer group (also the faust app id)."""
    return settings.projector_group or f"{settings.topic_prefix}-projector"


def build_app(settings: Settings, projector: Projector) -> faust.App:
    """The faust app: one agent over the run and audit topics, batched per partition."""
    app = faust.App(
        group_id(settings),
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        topic_partitions=settings.topic_partitions,
        topic_disable_leader=True,
        topic_allow_declare=False,  # streams.topics declares them, with their retention
        consumer_auto_offset_reset="earliest",
        # Short group timeouts (and optional static membership) so a restarted
        # processor owns its partitions again within seconds.
        broker_session_timeout=settings.projector_session_timeout_s,
        broker_heartbeat_interval=settings.projector_heartbeat_s,
        broker_rebalance_timeout=settings.projector_session_timeout_s,
        consumer_group_instance_id=settings.projector_instance_id,
        broker_commit_interval=1.0,
        web_enabled=False,
    )
    topic = app.topic(
        *(topic_name(settings, t) for t in PROJECTED_TOPICS),
        value_serializer="raw",
        key_serializer="raw",
    )

    @app.agent(topic, name="project")
    async def project(stream: Any) -> None:
        async for batch in stream.take_events(
            settings.projector_batch_max, within=settings.projector_batch_within_s
        ):
            await handle_batch(projector, batch)

    return app


async def handle_batch(projector: Projector, batch: Sequence[Any]) -> None:
    """Split a faust batch by partition (order kept) and hand each to the projector."""
    parts: dict[tuple[str, int], list[RawRecord]] = defaultdict(list)
    for event in batch:
        msg = event.message
        headers = [(k, v) for k, v in (msg.headers or [])]
        parts[(msg.topic, msg.partition)].append(
            RawRecord(msg.offset, msg.key, msg.value, headers)
        )
    for (topic, partition), raws in parts.items():
        await projector.handle(topic, partition, raws)


@asynccontextmanager
async def projector_resources(settings: Settings) -> AsyncIterator[Projector]:
    """Migrate, declare topics, open Postgres, Redis and the dead-letter producer."""
    await ensure_declared_topics(settings)
    pool = await asyncpg.create_pool(settings.postgres_dsn, min_size=1, max_size=4)
    redis = Redis.from_url(settings.redis_url, socket_timeout=10)
    dlq = KafkaDeadLetterWriter(settings, group_id(settings))
    try:
        await apply_migrations(pool, schema=settings.projections_schema)
        await dlq.start()
        codec = EventCodec(SchemaRegistry.from_dir(settings.schemas_dir))
        sinks: list[Sink] = [
            PostgresSink(pool, PostgresProjection(schema=settings.projections_schema)),
            RedisSink(RedisProjection.of(redis, settings)),
        ]
        yield Projector(codec, sinks, dlq)
    finally:
        await dlq.stop()
        await redis.aclose()
        await pool.close()


async def run_projector(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Run the projector until ``stop`` is set (or SIGTERM/SIGINT arrives)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    async with projector_resources(settings) as projector:
        app = build_app(settings, projector)
        worker = faust.Worker(
            app, loglevel="WARNING", override_logging=False, loop=loop, daemon=False
        )
        await worker.start()
        # After start: mode's worker installs handlers that stop the loop under us.
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log.warning("projector %s running", group_id(settings))
        mark_ready()
        try:
            await stop.wait()
        finally:
            await worker.stop()
