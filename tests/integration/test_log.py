"""Topics and appends against the real Kafka broker of the test stack."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from domain import ids
from domain.events import StepStarted
from omnihub.settings import Settings
from streams.admin import ensure_declared_topics
from streams.codec import EventCodec
from streams.log_reader import read_log
from streams.producer import KafkaEventAppender
from streams.schema_registry import SchemaRegistry
from streams.topics import Topic, topic_name, topic_specs
from tests.factories import goal_received


def fresh_settings() -> Settings:
    """Settings whose topics no other test uses."""
    return Settings(topic_prefix=f"t{uuid.uuid4().hex[:10]}")


def make_codec(settings: Settings) -> EventCodec:
    return EventCodec(SchemaRegistry.from_dir(settings.schemas_dir))


async def topic_config(settings: Settings, name: str) -> dict[str, str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        (response,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
        return {e[0]: e[1] for e in response.resources[0][4]}
    finally:
        await admin.close()


async def test_declared_topics_are_created_once_with_their_config() -> None:
    settings = fresh_settings()
    assert await ensure_declared_topics(settings) == []
    assert await ensure_declared_topics(settings) == []  # idempotent: no error, no mismatch
    runs = topic_name(settings, Topic.RUNS)
    config = await topic_config(settings, runs)
    assert config["retention.ms"] == "-1"
    assert config["min.insync.replicas"] == "1"
    assert len(topic_specs(settings)) == len(Topic)


async def test_a_mismatched_existing_topic_is_reported() -> None:
    settings = fresh_settings()
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(
                    topic_name(settings, Topic.AUDIT),
                    2,
                    1,
                    topic_configs={"retention.ms": "86400000"},
                )
            ]
        )
    finally:
        await admin.close()
    mismatches = await ensure_declared_topics(settings)
    audit = topic_name(settings, Topic.AUDIT)
    assert f"{audit}: 2 partitions, declared 6" in mismatches
    assert f"{audit}: retention.ms=86400000, declared -1" in mismatches


async def test_each_runs_events_stay_in_append_order_on_one_partition() -> None:
    settings = fresh_settings()
    await ensure_declared_topics(settings)
    codec = make_codec(settings)
    appender = KafkaEventAppender(settings, codec)
    runs = [str(uuid.uuid4()) for _ in range(6)]
    try:

        async def append_run(run_id: str) -> list[tuple[int, int]]:
            placed = [await appender.append(goal_received(run_id))]
            for step in range(15):
                env = ids.envelope(
                    StepStarted,
                    run_id=run_id,
                    tenant_id="acme",
                    actor="saga",
                    correlation_id=run_id,
                    discriminator=(f"s{step}", 1),
                )
                placed.append(await appender.append(StepStarted(env, f"s{step}", "echo", 1)))
            return [(r.partition, r.offset) for r in placed]

        placements = await asyncio.gather(*(append_run(r) for r in runs))
    finally:
        await appender.stop()

    seen: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
    async for rec in read_log(settings.kafka_bootstrap, codec, [topic_name(settings, Topic.RUNS)]):
        assert rec.event is not None
        seen[rec.event.envelope.run_id].append((rec.partition, rec.offset, rec.event.EVENT_TYPE))
    for run_id, placed in zip(runs, placements, strict=True):
        read_back = seen[run_id]
        assert len({p for p, _, _ in read_back}) == 1  # one partition per run
        assert [(p, o) for p, o, _ in read_back] == placed  # the offsets append returned
        assert [t for _, _, t in read_back] == ["goal_received"] + ["step_started"] * 15


async def test_unreachable_kafka_fails_fast_with_log_unavailable() -> None:
    import pytest

    from streams.producer import LogUnavailable

    settings = Settings(kafka_bootstrap="127.0.0.1:9")  # nothing listens on the discard port
    appender = KafkaEventAppender(settings, make_codec(settings), timeout_s=2)
    with pytest.raises(LogUnavailable, match="cannot connect to Kafka"):
        await appender.append(goal_received())


async def test_omnihub_tail_prints_a_runs_events_filtered_by_type() -> None:
    import json
    import os
    import sys

    settings = fresh_settings()
    await ensure_declared_topics(settings)
    appender = KafkaEventAppender(settings, make_codec(settings))
    run_id, other = str(uuid.uuid4()), str(uuid.uuid4())
    try:
        await appender.append(goal_received(run_id))
        await appender.append(goal_received(other))
        env = ids.envelope(
            StepStarted,
            run_id=run_id,
            tenant_id="acme",
            actor="saga",
            correlation_id=run_id,
            discriminator=("s1", 1),
        )
        await appender.append(StepStarted(env, "s1", "echo", 1))
    finally:
        await appender.stop()

    async def tail(*extra: str) -> list[str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "apps.cli",
            "tail",
            "--from-beginning",
            "--no-follow",
            "--run",
            run_id,
            *extra,
            env={**os.environ, "OMNIHUB_TOPIC_PREFIX": settings.topic_prefix},
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
        assert proc.returncode == 0
        return out.decode().splitlines()

    everything = await tail()
    assert [line.split()[1] for line in everything] == ["goal_received", "step_started"]
    assert all(f"run={run_id}" in line for line in everything)
    (only_steps,) = await tail("--type", "step_started", "--json")
    record = json.loads(only_steps)
    assert record["envelope"]["event_type"] == "step_started"
    assert record["payload"] == {"step_id": "s1", "tool": "echo", "attempt": 1}


async def test_audit_retention_is_configurable_and_other_topics_keep_everything() -> None:
    settings = Settings(topic_prefix=f"t{uuid.uuid4().hex[:10]}", audit_retention_days=30)
    assert await ensure_declared_topics(settings) == []
    audit = await topic_config(settings, topic_name(settings, Topic.AUDIT))
    runs = await topic_config(settings, topic_name(settings, Topic.RUNS))
    assert audit["retention.ms"] == str(30 * 86_400_000)
    assert runs["retention.ms"] == "-1"


async def test_tail_json_is_pure_json_and_filters_by_tenant_time_and_topic() -> None:
    import json
    import os
    import sys

    from aiokafka import AIOKafkaProducer

    settings = fresh_settings()
    await ensure_declared_topics(settings)
    appender = KafkaEventAppender(settings, make_codec(settings))
    ours, theirs = str(uuid.uuid4()), str(uuid.uuid4())
    try:
        await appender.append(goal_received(ours))
        await appender.append(goal_received(theirs, tenant="globex"))
    finally:
        await appender.stop()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:  # garbage in the log and a copy in the dead-letter topic, as a failed fold leaves
        for role in (Topic.RUNS, Topic.DEADLETTER):
            await producer.send_and_wait(topic_name(settings, role), b"not avro", key=b"x")
    finally:
        await producer.stop()

    async def tail(*extra: str) -> tuple[int, list[str], str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "apps.cli", "tail", "--from-beginning", "--no-follow",
            "--json", *extra,
            env={**os.environ, "OMNIHUB_TOPIC_PREFIX": settings.topic_prefix},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
        return proc.returncode or 0, out.decode().splitlines(), err.decode()

    code, lines, err = await tail()
    assert code == 0
    records = [json.loads(line) for line in lines]  # every stdout line is one object
    assert {r["envelope"]["run_id"] for r in records} == {ours, theirs}
    assert "cannot be decoded" in err and "1 record(s)" in err  # the log's garbage only
    _, lines, _ = await tail("--tenant", "globex")
    assert [json.loads(line)["envelope"]["run_id"] for line in lines] == [theirs]
    _, lines, _ = await tail("--since", "2999-01-01T00:00:00Z")
    assert lines == []
    _, lines, _ = await tail("--until", "2999-01-01T00:00:00Z", "--topic", "runs")
    assert len(lines) == 2
    code, lines, err = await tail("--type", "goal_recieved")
    assert code == 2 and lines == [] and "goal_received" in err
