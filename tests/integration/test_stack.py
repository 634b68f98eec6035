"""The local stack against its real servers: status, idempotent up, restarts keep data."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Iterator

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from infra.backing import SERVICES
from infra.process import PidRecord, start_ticks
from infra.stack import (
    ServiceSpec,
    StackConfig,
    StackError,
    down,
    kill,
    register_service,
    status,
    unregister_service,
    up,
)
from omnihub.settings import get_settings

BACKING = [spec.name for spec in SERVICES]
RESTARTED = ["kafka", "redis", "temporal"]


@pytest.fixture(scope="module")
def own_stack(stack: StackConfig) -> Iterator[StackConfig]:
    """A second stack for the tests that stop and kill servers, so the shared test
    stack (and anything else using it at the same time) is never disturbed. It is
    stopped when the module is done."""
    offset = stack.kafka_port - StackConfig().kafka_port + 10000
    cfg = StackConfig().with_offset(offset, stack.state_dir.parent / f"test-restarts-{offset}")
    try:
        up(cfg, RESTARTED)
        yield cfg
    finally:
        down(cfg)  # also when up failed half-way


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _pids(cfg: StackConfig) -> dict[str, int | None]:
    return {item.name: item.pid for item in status(cfg, BACKING)}


def test_status_reports_each_backing_service(stack: StackConfig) -> None:
    statuses = status(stack, BACKING)

    assert [item.name for item in statuses] == ["kafka", "postgres", "redis", "temporal", "chain"]
    assert all(item.state == "running" and item.pid for item in statuses), statuses
    endpoints = {item.name: item.endpoint for item in statuses}
    assert endpoints["kafka"] == f"127.0.0.1:{stack.kafka_port}"
    assert endpoints["postgres"] == f"127.0.0.1:{stack.postgres_port}"
    assert endpoints["chain"] == f"http://127.0.0.1:{stack.chain_port}"


def test_second_up_is_idempotent(stack: StackConfig) -> None:
    before = _pids(stack)

    again = up(stack, BACKING)

    assert {item.name: item.pid for item in again} == before
    assert {item.detail for item in again} == {"already running"}


async def test_postgres_has_pgvector(stack: StackConfig) -> None:
    conn = await asyncpg.connect(get_settings().postgres_dsn, timeout=10)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        await conn.execute("CREATE TEMP TABLE items (id int, embedding vector(3))")
        await conn.execute("INSERT INTO items VALUES (1, '[1,0,0]'), (2, '[0,1,0]')")
        nearest = await conn.fetchval(
            "SELECT id FROM items ORDER BY embedding <-> '[0.9,0.1,0]' LIMIT 1"
        )
    finally:
        await conn.close()
    assert nearest == 1


async def test_redis_keeps_data_across_restart(own_stack: StackConfig) -> None:
    stack = own_stack
    redis_url = stack.client_env()["OMNIHUB_REDIS_URL"]
    key, value = _unique("stack-test"), uuid.uuid4().hex
    client = aioredis.from_url(redis_url)
    await client.set(key, value)
    await client.aclose()
    old_pid = _pids(stack)["redis"]

    assert down(stack, ["redis"])[0].state == "stopped"
    assert up(stack, ["redis"])[0].detail == "started"

    client = aioredis.from_url(redis_url)
    try:
        assert await client.get(key) == value.encode()
    finally:
        await client.aclose()
    assert _pids(stack)["redis"] != old_pid


async def test_kafka_keeps_every_event_across_restart(own_stack: StackConfig) -> None:
    stack = own_stack
    bootstrap = stack.client_env()["OMNIHUB_KAFKA_BOOTSTRAP"]
    topic = _unique("stack-test")
    payloads = [uuid.uuid4().bytes for _ in range(300)]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        sent = [await producer.send(topic, p, key=p[:4]) for p in payloads]
        await asyncio.gather(*sent)  # every one acknowledged before the restart
    finally:
        await producer.stop()

    down(stack, ["kafka"])
    up(stack, ["kafka"])

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    received: list[bytes] = []
    try:
        async with asyncio.timeout(60):
            while len(received) < len(payloads):
                batch = await consumer.getmany(timeout_ms=1000)
                received += [m.value for msgs in batch.values() for m in msgs]
    finally:
        await consumer.stop()
    assert sorted(received) == sorted(payloads)


def test_crashed_service_is_cleaned_up_and_restarted(own_stack: StackConfig) -> None:
    stack = own_stack
    pid_file = stack.run_dir / "temporal.pid"
    crashed = PidRecord.read(pid_file)
    assert crashed is not None

    kill(stack, "temporal")

    assert start_ticks(crashed.pid) is None
    assert status(stack, ["temporal"])[0].state == "stopped"
    assert not pid_file.exists()  # the stale pid file is gone
    restarted = up(stack, ["temporal"])[0]
    assert restarted.detail == "started" and restarted.pid != crashed.pid


def test_failing_service_is_reported_with_its_log_tail(stack: StackConfig) -> None:
    name, marker = _unique("broken"), uuid.uuid4().hex
    register_service(
        ServiceSpec(
            name=name,
            argv=lambda cfg: ["/bin/sh", "-c", f"echo cannot start: {marker} >&2; exit 3"],
            endpoint=lambda cfg: "nowhere",
            health=lambda cfg: False,
            start_timeout_s=10,
        )
    )
    try:
        with pytest.raises(StackError) as failure:
            up(stack, [name])
        assert status(stack, [name])[0].state == "stopped"
    finally:
        unregister_service(name)
    assert failure.value.service == name
    assert f"cannot start: {marker}" in failure.value.log_tail
    assert marker in str(failure.value)


def test_service_never_healthy_times_out_and_is_stopped(stack: StackConfig) -> None:
    name = _unique("stuck")
    register_service(
        ServiceSpec(
            name=name,
            argv=lambda cfg: ["sleep", "300"],
            endpoint=lambda cfg: "nowhere",
            health=lambda cfg: False,
            start_timeout_s=1,
            stop_grace_s=2,
        )
    )
    try:
        with pytest.raises(StackError, match="not healthy within 1s"):
            up(stack, [name])
        assert status(stack, [name])[0].state == "stopped"
    finally:
        unregister_service(name)


def test_processor_that_dies_before_ready_fails_up_with_its_log(stack: StackConfig) -> None:
    from infra.platform import processor

    name, marker = _unique("proc"), uuid.uuid4().hex
    code = f"import sys, time; time.sleep(0.5); sys.exit('migration failed: {marker}')"
    register_service(processor(name, ["-c", code], "kafka://nowhere"))
    try:
        with pytest.raises(StackError, match="exited during startup") as failure:
            up(stack, [name])
    finally:
        unregister_service(name)
    assert marker in failure.value.log_tail


def test_processor_is_healthy_only_once_it_marks_itself_ready(stack: StackConfig) -> None:
    from infra.platform import processor

    name = _unique("proc")
    code = (
        "import time; time.sleep(1); from omnihub.readiness import mark_ready; "
        "mark_ready(); time.sleep(60)"
    )
    register_service(processor(name, ["-c", code], "kafka://nowhere"))
    try:
        (started,) = up(stack, [name])
        assert started.state == "running"
        assert (stack.run_dir / f"{name}.ready").exists()
    finally:
        down(stack, [name])
        unregister_service(name)


def test_up_replaces_a_process_running_other_code(stack: StackConfig) -> None:
    """After a pull or an edit, ``up`` restarts what runs the old code; unchanged, it
    leaves the process alone."""
    from infra.platform import code_version, processor

    name, version = _unique("proc"), ["v1"]
    code = "from omnihub.readiness import mark_ready; import time; mark_ready(); time.sleep(60)"
    spec = processor(name, ["-c", code], "kafka://nowhere")
    register_service(dataclasses.replace(spec, version=lambda cfg: version[0]))
    try:
        (first,) = up(stack, [name])
        (again,) = up(stack, [name])
        assert (first.detail, again.detail, again.pid) == ("started", "already running", first.pid)
        version[0] = "v2"
        (replaced,) = up(stack, [name])
        assert replaced.state == "running" and replaced.pid != first.pid
        assert replaced.detail.startswith("restarted: code or configuration changed")
        assert PidRecord.read(stack.run_dir / f"{name}.pid") is not None
        assert first.pid is not None and start_ticks(first.pid) is None  # the old one is gone
    finally:
        down(stack, [name])
        unregister_service(name)
    assert code_version() == code_version() and len(code_version()) == 16
