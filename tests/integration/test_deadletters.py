"""One dead-letter format: the same garbage, fed to every consumer, is dead-lettered once
by each, and every letter says why, what and where, and which consumer gave up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

import asyncpg
import httpx
import numpy as np
import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis
from temporalio.client import Client

from apps import gateway
from apps.projector import projector
from omnihub.settings import Settings
from projections.migrate import apply_migrations
from projections.plan_cache.projector import PlanCacheFolder
from projections.plan_cache.store import PgPlanCacheStore, migrate
from sagas.bridge import SagaBridge, TemporalRuns, policy_from
from sagas.notify.channels import RedisChannels
from sagas.notify.handler import Notifier
from streams.admin import ensure_declared_topics
from streams.codec import EventCodec
from streams.follower import LogConsumer
from streams.producer import KafkaEventAppender
from streams.replay import end_offsets, replay
from streams.schema_registry import SchemaRegistry
from streams.topics import Topic, topic_name
from streams.topology import NOTIFIER, PLAN_CACHE, PROCESSES, SAGA_BRIDGE
from tests.integration.test_projection_store import isolated_settings

pytestmark = pytest.mark.usefixtures("stack")

GARBAGE = b"\xc3\x01 this is not an OmniHub event"


class NeverEmbeds:
    """The plan cache's embedder for garbage: it must never be asked."""

    dimensions = 384
    model_name = "never"

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        assert not texts, "garbage reached the embedder"
        return np.zeros((0, 384), dtype=np.float32)


@asynccontextmanager
async def every_consumer(settings: Settings) -> AsyncIterator[list[LogConsumer]]:
    """Each consumer of streams.topology, wired as its process wires it."""
    codec = EventCodec(SchemaRegistry.from_dir(settings.schemas_dir))
    async with AsyncExitStack() as stack:
        found = [await stack.enter_async_context(projector(settings))]
        pool = await gateway.open_pool(settings)
        stack.push_async_callback(pool.close)
        async with pool.acquire() as conn:
            await apply_migrations(conn, schema=settings.projections_schema)
        redis = Redis.from_url(settings.redis_url)
        stack.push_async_callback(redis.aclose)
        appender = KafkaEventAppender(settings, codec)
        stack.push_async_callback(appender.stop)
        found += gateway.consumers(settings, pool, redis, appender)
        plain: asyncpg.Pool = await asyncpg.create_pool(
            settings.postgres_dsn, min_size=1, max_size=2
        )
        stack.push_async_callback(plain.close)
        await migrate(plain, settings.projections_schema)
        store = PgPlanCacheStore(plain, schema=settings.projections_schema)
        folder = PlanCacheFolder(store, NeverEmbeds(), ttl_s=60.0)
        found.append(LogConsumer(settings, PLAN_CACHE, codec, [folder]))
        client = await Client.connect(settings.temporal_address)
        bridge = SagaBridge(TemporalRuns(client, "never-started"), policy_from(settings))
        found.append(LogConsumer(settings, SAGA_BRIDGE, codec, [bridge]))
        http = await stack.enter_async_context(httpx.AsyncClient())
        notifier = Notifier(settings, RedisChannels(redis, settings.topic_prefix), appender, http)
        found.append(LogConsumer(settings, NOTIFIER, codec, [notifier]))
        yield found


async def test_garbage_is_dead_lettered_once_per_consumer_in_one_format() -> None:
    settings = isolated_settings()
    await ensure_declared_topics(settings)
    sources = {}
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        for role in (Topic.RUNS, Topic.CONTROL):  # no event_type header: nobody may skip it
            meta = await producer.send_and_wait(topic_name(settings, role), GARBAGE, key=b"x")
            sources[role] = f"{meta.topic}:{meta.partition}:{meta.offset}"
    finally:
        await producer.stop()

    async with every_consumer(settings) as consumers:
        assert {c.name for c in consumers} == {
            s.consumer for subs in PROCESSES.values() for s in subs
        }
        for consumer in consumers:
            await consumer.catch_up()
            if consumer.name not in ("saga-bridge", "notifier"):
                # Again: the positions stored with the effects moved past the garbage, so
                # nothing is sent twice. (The bridge and the notifier keep no position of
                # their own: they resume from their group's committed offset, which
                # catch_up never uses.)
                await consumer.catch_up()

    dlq = topic_name(settings, Topic.DEADLETTER)
    ends = await end_offsets(settings.kafka_bootstrap, [dlq])
    letters = [
        (r.key, r.value, dict(r.headers))
        async for _t, _p, batch in replay(
            settings.kafka_bootstrap, {k: (0, v) for k, v in ends.items()}
        )
        for r in batch
    ]
    expected = {
        (s.consumer, sources[role])
        for subs in PROCESSES.values()
        for s in subs
        for role in s.topics
        if role in sources
    }
    got = [(h["dlq.consumer"].decode(), h["dlq.source"].decode()) for _k, _v, h in letters]
    assert sorted(got) == sorted(expected)  # once per consumer and source, no more
    for key, value, headers in letters:
        consumer, source = headers["dlq.consumer"].decode(), headers["dlq.source"].decode()
        assert key == f"{consumer}@{source}".encode()
        assert value == GARBAGE
        assert headers["dlq.reason"] in (b"bad_header", b"unknown_schema", b"corrupt_body")
        assert headers["dlq.detail"]
        assert set(headers) == {"dlq.reason", "dlq.detail", "dlq.source", "dlq.consumer", "dlq.at"}


async def test_operators_list_and_replay_dead_letters() -> None:
    import json
    import os
    import sys

    settings = isolated_settings()
    await ensure_declared_topics(settings)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        meta = await producer.send_and_wait(topic_name(settings, Topic.RUNS), GARBAGE, key=b"x")
    finally:
        await producer.stop()
    source = f"{meta.topic}:{meta.partition}:{meta.offset}"
    async with every_consumer(settings) as consumers:
        for consumer in consumers:
            if consumer.name in ("projector", "saga-bridge"):
                await consumer.catch_up()

    async def omnihub(*args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "apps.cli", "deadletters", *args,
            env={**os.environ, "OMNIHUB_TOPIC_PREFIX": settings.topic_prefix},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
        return proc.returncode or 0, out.decode(), err.decode()

    code, out, _ = await omnihub("list", "--json")
    letters = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and {(x["consumer"], x["source"]) for x in letters} == {
        ("projector", source),
        ("saga-bridge", source),
    }
    code, out, _ = await omnihub("show", source, "--consumer", "projector")
    assert code == 0 and "projector" in out and "unknown_schema" in out
    code, out, _ = await omnihub("replay", source, "--consumer", "projector", "--as", "ops")
    assert code == 0 and "replayed 1 record(s)" in out
    runs = topic_name(settings, Topic.RUNS)
    ends = await end_offsets(settings.kafka_bootstrap, [runs])
    again = [
        dict(r.headers)
        async for _t, _p, batch in replay(
            settings.kafka_bootstrap, {k: (0, v) for k, v in ends.items()}
        )
        for r in batch
        if r.value == GARBAGE and "dlq.replay_of" in dict(r.headers)
    ]
    assert [h["dlq.replay_of"] for h in again] == [f"projector@{source}".encode()]
    from apps.commands.operator import os_user
    from domain.events import AuditFactObserved
    from streams.log_reader import read_log

    codec = EventCodec(SchemaRegistry.from_dir(settings.schemas_dir))
    control = topic_name(settings, Topic.CONTROL)
    facts = [
        rec.event
        async for rec in read_log(settings.kafka_bootstrap, codec, [control])
        if isinstance(rec.event, AuditFactObserved)
    ]
    assert [(f.action, f.subject, f.details["os_user"], f.details["acting_as"]) for f in facts] == [
        ("deadletter_replay", f"user:ops (os user {os_user()})", os_user(), "ops")
    ]
