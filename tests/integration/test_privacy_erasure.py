"""Crypto-shredding against the real stack: the original text is nowhere in Kafka's
bytes (nor in Temporal's files), and, after ``omnihub privacy erase``, nowhere in any
Postgres table or Redis key, nor after a rebuild from the log; the read models and
``as-of`` say erased. Runs that went through Temporal: test_temporal_sealing.py."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import os
import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime

import asyncpg
from redis.asyncio import Redis

from apps.gateway import run_gateway
from apps.notifier import run_notifier
from domain import ids
from domain.events import (
    ApprovalGranted,
    Event,
    GoalReceived,
    KillSwitchToggled,
    NotificationChannelSet,
    StepCompleted,
)
from domain.privacy import ERASED, PREFIX
from infra.stack import StackConfig
from omnihub.settings import Settings
from projections.as_of import known_at
from projections.keyring import Keks, PgKeyStore, keks_from, privacy_for
from projections.plan_cache.projector import PlanCacheFolder
from projections.rebuild import rebuild_postgres, rebuild_redis
from projections.shredding import erase_subject
from streams.admin import ensure_declared_topics
from streams.audit_verify import verify_topic
from streams.follower import LogConsumer
from streams.producer import KafkaEventAppender
from streams.replay import end_offsets, replay
from streams.topics import Topic, topic_name
from streams.topology import PLAN_CACHE
from tests.e2e.test_ingest import example_consumer
from tests.integration.test_plan_cache import EMBEDDER, planned, step
from tests.integration.test_plan_cache_projector import fresh_store
from tests.integration.test_projection_store import (
    caught_up,
    codec_for,
    fetch,
    isolated_settings,
    running_projector,
    story,
    wait_for,
)


def personal_run(run_id: str, tenant: str, text: str, subject: str | None) -> list[Event]:
    """A run whose goal, context, result and approval reason all carry ``text``."""
    out: list[Event] = []
    for e in story(run_id, tenant, 2):
        if isinstance(e, GoalReceived):
            context = {"note": f"call {text}"} | ({"data_subject": subject} if subject else {})
            e = dataclasses.replace(e, goal=f"Book a table for {text}", context=context)
        elif isinstance(e, StepCompleted):
            e = dataclasses.replace(e, result_json=json.dumps({"booked_for": text}))
        elif isinstance(e, ApprovalGranted):
            e = dataclasses.replace(e, reason=f"{text} is a regular")
        out.append(e)
    return out


async def kafka_holds(settings: Settings, text: str) -> bool:
    """Whether any record's raw bytes (value, key, headers) of any topic contain ``text``."""
    topics = [topic_name(settings, t) for t in Topic]
    ends = await end_offsets(settings.kafka_bootstrap, topics)
    ranges = {tp: (0, end) for tp, end in ends.items() if end}
    needle = text.encode()
    async for _, _, raws in replay(settings.kafka_bootstrap, ranges):
        for raw in raws:
            blobs = [raw.value or b"", raw.key or b"", *(v for _, v in raw.headers)]
            if any(needle in blob for blob in blobs):
                return True
    return False


async def postgres_tables_holding(settings: Settings, text: str) -> list[str]:
    """Every table of every schema whose rows, as text, contain ``text``."""
    conn = await asyncpg.connect(settings.postgres_dsn)
    try:
        tables = await conn.fetch(
            "SELECT table_schema, table_name FROM information_schema.tables"
            " WHERE table_type = 'BASE TABLE'"
            " AND table_schema NOT IN ('pg_catalog', 'information_schema')"
        )
        found = []
        for t in tables:
            name = f'"{t["table_schema"]}"."{t["table_name"]}"'
            if await conn.fetchval(
                f"SELECT 1 FROM {name} r WHERE r::text LIKE $1 LIMIT 1", f"%{text}%"
            ):
                found.append(name)
        return found
    finally:
        await conn.close()


async def redis_keys_holding(settings: Settings, text: str) -> list[str]:
    """Every Redis key whose name or value (any type) contains ``text``."""
    redis = Redis.from_url(settings.redis_url)
    needle = text.encode()
    found = []
    try:
        async for key in redis.scan_iter(count=1000):
            kind = (await redis.type(key)).decode()
            values: list[bytes] = [key]
            if kind == "string":
                values.append(await redis.get(key) or b"")
            elif kind == "hash":
                values += [x for kv in (await redis.hgetall(key)).items() for x in kv]
            elif kind == "set":
                values += list(await redis.smembers(key))
            elif kind == "zset":
                values += list(await redis.zrange(key, 0, -1))
            elif kind == "list":
                values += list(await redis.lrange(key, 0, -1))
            if any(needle in v for v in values):
                found.append(key.decode(errors="replace"))
        return found
    finally:
        await redis.aclose()


def temporal_db_holds(stack: StackConfig, text: str) -> bool:
    """Whether the raw bytes of the Temporal dev server's SQLite files (the database and
    its write-ahead log: workflow histories, mutable state, visibility) contain ``text``."""
    needle = text.encode()
    return any(needle in p.read_bytes() for p in (stack.state_dir / "temporal").glob("*.db*"))


async def example_reads_goal(settings: Settings, run_id: str) -> str:
    """The goal of ``run_id`` as examples/analytics_consumer.py reads it with the keys."""
    analytics = example_consumer()
    schemas = analytics.load_schemas(settings.schemas_dir)
    kek = base64.b64encode(keks_from(settings).current).decode()
    keys = analytics.Keys(settings.postgres_dsn, kek, settings.projections_schema)
    topic = topic_name(settings, Topic.RUNS)
    ends = await end_offsets(settings.kafka_bootstrap, [topic])
    ranges = {tp: (0, end) for tp, end in ends.items()}
    async for _, _, raws in replay(settings.kafka_bootstrap, ranges):
        for raw in raws:
            kind = dict(raw.headers).get("event_type")
            if raw.key == run_id.encode() and kind == b"goal_received" and raw.value:
                event = await analytics.open_sealed(analytics.decode(raw.value, schemas), keys)
                return str(event["goal"])
    raise AssertionError(f"no goal_received for {run_id}")


async def audit_rows(settings: Settings, where: str) -> int:
    return len(await fetch(settings, f"SELECT 1 FROM audit_log WHERE {where}"))


async def chain_verifies(settings: Settings) -> bool:
    codec = codec_for(settings)
    topic = topic_name(settings, Topic.AUDIT)
    result = await verify_topic(settings.kafka_bootstrap, codec, [topic])
    return result.ok and bool(result.tenants)


async def test_erasure_leaves_no_plaintext_anywhere_and_rebuilds_clean(
    stack: StackConfig,
) -> None:
    settings = isolated_settings()
    secret, other = f"Zorbwick{uuid.uuid4().hex[:8]}", f"Quillon{uuid.uuid4().hex[:8]}"
    subject = f"{secret}@example.com"
    tenant = "tenant-pii"
    await ensure_declared_topics(settings)
    codec = codec_for(settings)
    appender = KafkaEventAppender(
        settings, codec, timeout_s=60, privacy=privacy_for(settings, codec.registry)
    )
    run_a, run_b = f"run-a-{uuid.uuid4().hex[:6]}", f"run-b-{uuid.uuid4().hex[:6]}"
    store = PgKeyStore(settings)
    try:
        await appender.append_many(personal_run(run_a, tenant, secret, subject))
        await appender.append_many(personal_run(run_b, tenant, other, None))
        stop_gateway = asyncio.Event()  # the audit chainer links the approvals' reasons
        gateway = asyncio.create_task(run_gateway(settings, stop_gateway))
        async with running_projector(settings):
            await wait_for(lambda: caught_up(settings), 60, "the projector")
            approvals = "category = 'approval'"
            await wait_for(lambda: _at_least(audit_rows(settings, approvals), 2), 60, "audit")
            # Before: the log holds ciphertext only; the read models hold plaintext.
            assert not await kafka_holds(settings, secret)
            assert not await kafka_holds(settings, subject)
            held = await postgres_tables_holding(settings, secret)
            assert {t.split(".")[1] for t in held} >= {'"runs"', '"run_events"', '"approvals"'}
            assert await redis_keys_holding(settings, secret)  # the live run view
            assert await chain_verifies(settings)
            assert await example_reads_goal(settings, run_a) == f"Book a table for {secret}"

            erased = await erase_subject(
                store, appender, tenant_id=None, subject=subject, requested_by="user:dpo"
            )
            assert [(e.tenant_id, e.scope, e.run_ids) for e in erased] == [
                (tenant, "subject", [run_a])
            ]
            erasures = "category = 'privacy' AND action = 'erase' AND subject = 'user:dpo'"
            await wait_for(lambda: _at_least(audit_rows(settings, erasures), 1), 60, "erase")
            await wait_for(lambda: caught_up(settings), 60, "the projector after the erase")
            assert await example_reads_goal(settings, run_a) == ERASED
            assert await example_reads_goal(settings, run_b) == f"Book a table for {other}"
            # The chain hashed the reason's ciphertext, which the log still holds.
            assert await chain_verifies(settings)

            # After: nothing anywhere, and the read models say erased.
            assert await postgres_tables_holding(settings, secret) == []
            assert await redis_keys_holding(settings, secret) == []
            assert not await kafka_holds(settings, secret)
            goals = {r["run_id"]: r["goal"] for r in await fetch(settings, "SELECT * FROM runs")}
            assert goals[run_a] == ERASED
            assert goals[run_b] == f"Book a table for {other}"  # the tenant's key lives on
            (approval,) = await fetch(settings, "SELECT * FROM approvals WHERE run_id=$1", run_a)
            assert approval["reason"] == ERASED
            (audit,) = await fetch(
                settings, "SELECT details FROM audit_log WHERE details->>'run_id'=$1", run_a
            )
            # The audit read model keeps the reason sealed, as the chain hashed it.
            assert json.loads(audit["details"])["reason"].startswith(PREFIX)

            pg = await rebuild_postgres(settings)
            rd = await rebuild_redis(settings)
            assert pg.equal, pg.differences  # the erase wrote what a replay writes
            assert rd.equal
        stop_gateway.set()
        await asyncio.wait_for(gateway, 60)
        assert await postgres_tables_holding(settings, secret) == []
        assert await redis_keys_holding(settings, secret) == []
        assert not temporal_db_holds(stack, secret) and not temporal_db_holds(stack, subject)

        known = await known_at(
            settings.kafka_bootstrap,
            codec,
            topic_name(settings, Topic.RUNS),
            datetime.now(UTC),
            run_id=run_a,
            privacy=privacy_for(settings, codec.registry),
        )
        assert known.runs[run_a].goal == ERASED
    finally:
        await appender.stop()
        await store.close()


async def _at_least(count: Awaitable[int], n: int) -> bool:
    return await count >= n


async def test_rotating_the_kek_rewraps_keys_without_touching_the_log() -> None:
    settings = isolated_settings()
    old, new = os.urandom(32), os.urandom(32)
    before = PgKeyStore(settings, Keks(old))
    key_id, key = await before.key_for_run("tenant-k", f"run-{uuid.uuid4().hex[:6]}", None)
    await before.close()
    await ensure_declared_topics(settings)
    topics = [topic_name(settings, t) for t in Topic]
    log_before = await end_offsets(settings.kafka_bootstrap, topics)

    rotated = PgKeyStore(settings, Keks(new, (old,)))
    assert await rotated.rewrap() >= 1
    await rotated.close()
    only_new = PgKeyStore(settings, Keks(new))
    try:
        assert (await only_new.keys([key_id]))[key_id] == key
    finally:
        await only_new.close()
    assert await end_offsets(settings.kafka_bootstrap, topics) == log_before
    assert base64.b64encode(old) != base64.b64encode(new)


async def test_the_plan_cache_forgets_what_it_learned_from_an_erased_run() -> None:
    settings = isolated_settings()
    secret = f"Vandemeer{uuid.uuid4().hex[:8]}"
    tenant = f"tenant-{uuid.uuid4().hex[:6]}"
    await ensure_declared_topics(settings)
    codec = codec_for(settings)
    appender = KafkaEventAppender(
        settings, codec, timeout_s=60, privacy=privacy_for(settings, codec.registry)
    )
    plan = planned(f"Email the invoice to {secret}", [step("mail.send", to=secret)], tenant)
    plan = dataclasses.replace(plan, plan_id=ids.derive_id("plan", plan.envelope.run_id))
    pool = await asyncpg.create_pool(settings.postgres_dsn, min_size=1, max_size=2)
    store = PgKeyStore(settings)
    try:
        await appender.append(plan)
        assert not await kafka_holds(settings, secret)
        cache_store = await fresh_store(pool)
        folder = PlanCacheFolder(cache_store, EMBEDDER, ttl_s=settings.plan_cache_ttl_s)
        privacy = privacy_for(settings, codec.registry)
        consumer = LogConsumer(settings, PLAN_CACHE, codec, [folder], privacy=privacy)
        await consumer.catch_up()
        assert await postgres_tables_holding(settings, secret)  # the learned template

        erased = await erase_subject(
            store, appender, tenant_id=tenant, subject=None, requested_by="user:dpo"
        )
        assert [e.run_ids for e in erased] == [[plan.envelope.run_id]]
        await consumer.catch_up()
        assert await postgres_tables_holding(settings, secret) == []
        replayed = await fresh_store(pool)  # a rebuild learns nothing from erased text
        await LogConsumer(
            settings,
            PLAN_CACHE,
            codec,
            [PlanCacheFolder(replayed, EMBEDDER, ttl_s=settings.plan_cache_ttl_s)],
            privacy=privacy_for(settings, codec.registry),
        ).catch_up()
        assert await replayed.snapshot() == []
        assert await postgres_tables_holding(settings, secret) == []
    finally:
        await appender.stop()
        await store.close()
        await pool.close()


async def test_a_tenant_erasure_drops_the_notifiers_channels() -> None:
    settings = isolated_settings()
    secret = f"Ostrander{uuid.uuid4().hex[:8]}"
    tenant = f"tenant-{uuid.uuid4().hex[:6]}"
    await ensure_declared_topics(settings)
    codec = codec_for(settings)
    appender = KafkaEventAppender(
        settings, codec, timeout_s=60, privacy=privacy_for(settings, codec.registry)
    )
    channel = NotificationChannelSet(
        ids.envelope(
            NotificationChannelSet,
            run_id=f"notify-{tenant}",
            tenant_id=tenant,
            actor="user:ops",
            correlation_id=tenant,
            discriminator=("c1",),
        ),
        "c1",
        "email",
        f"{secret}@example.com",
    )
    store = PgKeyStore(settings)
    stop, ready = asyncio.Event(), asyncio.Event()
    notifier = asyncio.create_task(run_notifier(settings, stop, ready=ready))
    try:
        await asyncio.wait_for(ready.wait(), 60)
        await appender.append(channel)
        assert not await kafka_holds(settings, secret)
        await wait_for(
            lambda: _at_least(_count(redis_keys_holding(settings, secret)), 1), 60, "channel"
        )
        erased = await erase_subject(
            store, appender, tenant_id=tenant, subject=None, requested_by="user:dpo"
        )
        assert [(e.scope, e.run_ids) for e in erased] == [("tenant", [f"notify-{tenant}"])]
        await wait_for(lambda: _none(redis_keys_holding(settings, secret)), 60, "the channel to go")
        assert await postgres_tables_holding(settings, secret) == []
    finally:
        stop.set()
        await asyncio.wait_for(notifier, 60)
        await appender.stop()
        await store.close()


async def _count(found: Awaitable[list[str]]) -> int:
    return len(await found)


async def _none(found: Awaitable[list[str]]) -> bool:
    return not await found


async def test_after_an_erasure_new_runs_get_a_new_key_even_from_a_warm_cache() -> None:
    settings = isolated_settings()
    store = PgKeyStore(settings)
    subject = f"s-{uuid.uuid4().hex[:6]}"
    try:
        old, _ = await store.key_for_run("tenant-w", "run-w1", subject, new_run=True)
        again, _ = await store.key_for_run("tenant-w", "run-w2", subject, new_run=True)
        assert again == old  # one key per subject, cached
        later, _ = await store.key_for_run("tenant-w", "run-w1", None)
        assert later == old  # a run's later events: the key its goal was sealed with
        other = PgKeyStore(settings)  # the eraser is another process
        try:
            erased = await other.erase(tenant_id=None, subject=subject, requested_by="user:dpo")
        finally:
            await other.close()
        assert {e.key_id for e in erased} == {old}
        assert sorted(r for e in erased for r in e.run_ids) == ["run-w1", "run-w2"]
        new, _ = await store.key_for_run("tenant-w", "run-w3", subject, new_run=True)
        assert new != old
        keys = await store.keys([old, new])
        assert keys[old] is None and keys[new] is not None
    finally:
        await store.close()


def _toggle(tenant: str, reason: str) -> KillSwitchToggled:
    envelope = ids.envelope(
        KillSwitchToggled,
        run_id="killswitch-tool:wait",  # one stream for every tenant: ordered per feature
        tenant_id=tenant,
        actor="user:ops",
        correlation_id=reason,
        discriminator=(reason,),
    )
    return KillSwitchToggled(envelope, "tool:wait", True, reason)


async def test_a_kill_switch_is_sealed_with_the_key_of_the_tenant_that_toggled_it() -> None:
    settings = isolated_settings()
    codec = codec_for(settings)
    privacy, reader = privacy_for(settings, codec.registry), privacy_for(settings, codec.registry)
    store = PgKeyStore(settings)
    first, second = f"tenant-{uuid.uuid4().hex[:6]}", f"tenant-{uuid.uuid4().hex[:6]}"
    try:
        # The second toggle comes straight after the first, down the same shared stream.
        sealed = await privacy.seal([_toggle(first, "first's words"), _toggle(second, "mine")])
        erased = await store.erase(tenant_id=first, subject=None, requested_by="user:dpo")
        # The shared stream names its last sealer, the second tenant, not the first.
        assert [(e.scope, e.run_ids) for e in erased] == [("tenant", [])]
        opened = await reader.open(sealed)
        assert [e.reason for e in opened if isinstance(e, KillSwitchToggled)] == [ERASED, "mine"]
    finally:
        await store.close()
        await privacy.close()
        await reader.close()
