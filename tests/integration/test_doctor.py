"""omnihub doctor against the real servers: what it finds, and what it says to do."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from apps.commands.doctor import diagnose
from omnihub.settings import Settings
from streams.admin import ensure_declared_topics

pytestmark = pytest.mark.usefixtures("stack")


async def test_doctor_finds_a_missing_topic_and_says_what_to_do() -> None:
    settings = Settings(topic_prefix=f"doc{uuid.uuid4().hex[:8]}")
    await ensure_declared_topics(settings)
    found = {f.check: f for f in await diagnose(settings)}
    assert found["kafka"].ok and found["redis"].ok and found["temporal"].ok
    assert found["schemas"].ok and found["llm"].ok  # no model configured: nothing to call
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([f"{settings.topic_prefix}.control.v1"])
    finally:
        await admin.close()
    # A deletion takes effect asynchronously: the broker may still list (and describe)
    # the topic for a moment after answering the request.
    for _ in range(50):
        kafka = next(f for f in await diagnose(settings) if f.check == "kafka")
        if not kafka.ok:
            break
        await asyncio.sleep(0.2)
    assert not kafka.ok and "control.v1: missing" in kafka.detail
    assert "omnihub topics" in kafka.fix


async def test_doctor_reports_an_unreachable_service_with_the_setting_to_change() -> None:
    settings = Settings(redis_url="redis://127.0.0.1:1/0")
    redis = next(f for f in await diagnose(settings, timeout_s=3) if f.check == "redis")
    assert not redis.ok and "OMNIHUB_REDIS_URL" in redis.fix
