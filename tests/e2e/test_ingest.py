"""HTTP in, Kafka through: a real API process on the real test stack."""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from infra.launch import running_api
from infra.stack import StackConfig
from omnihub import REPO_ROOT
from omnihub.settings import Settings
from projections.keyring import keks_from
from streams.codec import EventCodec
from streams.log_reader import read_log
from streams.schema_registry import SchemaRegistry
from tests.e2e.gateway_stack import cli_key, gateway_env, running_processor

GOAL = {"tenant_id": "acme", "goal": "Book flight to Paris", "context": {"seat": "aisle"}}


def example_consumer() -> ModuleType:
    """examples/analytics_consumer.py, which imports nothing from OmniHub."""
    path = REPO_ROOT / "examples" / "analytics_consumer.py"
    spec = importlib.util.spec_from_file_location("analytics_consumer", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gateway(
    stack: StackConfig, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """A gateway of its own (topics, schema, secret) with its key processor running."""
    env = gateway_env(stack)
    with running_processor(env, tmp_path_factory.mktemp("proc")):
        yield env | {"KEY": cli_key(env, "acme", "goals:write").key}


@pytest.fixture(scope="module")
def prefix(gateway: dict[str, str]) -> str:
    return gateway["OMNIHUB_TOPIC_PREFIX"]


@pytest.fixture(scope="module")
def auth(gateway: dict[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {gateway['KEY']}"}


@pytest.fixture(scope="module")
def api(gateway: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_api(gateway, tmp_path_factory.mktemp("logs")) as url:
        yield url


async def test_health_reports_each_dependency(api: str) -> None:
    async with httpx.AsyncClient(base_url=api) as client:
        r = await client.get("/health")
    assert r.status_code == 200, r.text
    assert set(r.json()["checks"]) == {"kafka", "postgres", "redis", "temporal"}
    assert all(c["ok"] for c in r.json()["checks"].values())


async def test_posted_goal_is_decoded_by_an_independent_consumer(
    api: str, prefix: str, auth: dict[str, str], gateway: dict[str, str]
) -> None:
    async with httpx.AsyncClient(base_url=api, headers=auth) as client:
        r = await client.post("/api/v1/goals", json=GOAL)
    assert r.status_code == 202, r.text
    accepted = r.json()

    example = example_consumer()
    schemas = example.load_schemas(REPO_ROOT / "schemas")
    consumer = AIOKafkaConsumer(
        f"{prefix}.runs.v1",
        bootstrap_servers=Settings().kafka_bootstrap,
        group_id=f"analytics-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        async with asyncio.timeout(30):
            while True:
                msg = await consumer.getone()
                record = example.decode(msg.value, schemas)
                if record["envelope"]["run_id"] == accepted["run_id"]:
                    break
    finally:
        await consumer.stop()
    assert record["envelope"]["event_type"] == "goal_received"
    assert record["envelope"]["event_id"] == accepted["event_id"]
    # Personal fields are sealed in the log; a consumer holding the keys opens them.
    assert record["goal"].startswith("enc:v1:") and GOAL["goal"] not in str(record)
    settings = Settings(projections_schema=gateway["OMNIHUB_PROJECTIONS_SCHEMA"])
    kek = base64.b64encode(keks_from(settings).current).decode()
    keys = example.Keys(settings.postgres_dsn, kek, settings.projections_schema)
    opened = await example.open_sealed(record, keys)
    assert opened["goal"] == GOAL["goal"] and opened["context"] == GOAL["context"]
    blind = await example.open_sealed(record, example.Keys(None, None))
    assert blind["goal"] == "[erased]"  # without the keys: what an erased subject reads as
    assert (msg.partition, msg.offset) == (accepted["partition"], accepted["offset"])


async def test_retried_post_with_idempotency_key_appends_one_event(
    api: str, prefix: str, auth: dict[str, str]
) -> None:
    headers = {"Idempotency-Key": f"order-{uuid.uuid4()}"}
    async with httpx.AsyncClient(base_url=api, headers=auth) as client:
        answers = [await client.post("/api/v1/goals", json=GOAL, headers=headers) for _ in range(3)]
    assert [a.status_code for a in answers] == [202, 202, 202]
    assert answers[0].json() == answers[1].json() == answers[2].json()
    run_id = answers[0].json()["run_id"]

    settings = Settings(topic_prefix=prefix)
    codec = EventCodec(SchemaRegistry.from_dir(settings.schemas_dir))
    matching = [
        rec
        async for rec in read_log(settings.kafka_bootstrap, codec, [f"{prefix}.runs.v1"])
        if rec.event is not None and rec.event.envelope.run_id == run_id
    ]
    assert len(matching) == 1


async def test_bad_requests_are_problems_and_append_nothing(api: str, auth: dict[str, str]) -> None:
    async with httpx.AsyncClient(base_url=api, headers=auth) as client:
        malformed = await client.post(
            "/api/v1/goals", content=b"{oops", headers={"content-type": "application/json"}
        )
        too_long = await client.post("/api/v1/goals", json={**GOAL, "goal": "x" * 2001})
    for r in (malformed, too_long):
        assert r.status_code == 422
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["status"] == 422


def test_oversize_body_is_refused_without_being_read(api: str) -> None:
    """The server answers 413 after the headers alone; the 10 MB body is never sent."""
    host, port = api.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /api/v1/goals HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
            b'\r\nContent-Length: 10000000\r\n\r\n{"goal": "'
        )
        # The server closes the connection after its answer; the head and the body may
        # arrive in separate segments, so read until it does.
        chunks: list[bytes] = []
        while chunk := sock.recv(4096):
            chunks.append(chunk)
        answer = b"".join(chunks).decode()
    assert answer.startswith("HTTP/1.1 413")
    assert "application/problem+json" in answer and "body-too-large" in answer


async def test_kafka_unreachable_is_503_and_nothing_half_written(
    gateway: dict[str, str], auth: dict[str, str], tmp_path: Path
) -> None:
    env = {**gateway, "OMNIHUB_KAFKA_BOOTSTRAP": "127.0.0.1:9", "OMNIHUB_APPEND_TIMEOUT_S": "2"}
    key = f"down-{uuid.uuid4()}"
    with running_api(env, tmp_path) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30, headers=auth) as client:
            r = await client.post("/api/v1/goals", json=GOAL, headers={"Idempotency-Key": key})
            health = await client.get("/health")
    assert r.status_code == 503
    assert r.json()["type"].endswith("/log-unavailable")
    assert r.headers["retry-after"] == "5"
    assert health.status_code == 503
    assert health.json()["checks"]["kafka"]["ok"] is False
    assert health.json()["checks"]["redis"]["ok"] is True
