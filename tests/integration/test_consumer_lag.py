"""``omnihub_consumer_lag`` against real Kafka: a consumer stuck on a batch shows its lag
growing as records arrive behind it, and back to 0 once it has applied them."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping, Sequence

import pytest
from prometheus_client import REGISTRY

from streams.admin import ensure_declared_topics
from streams.codec import EventCodec
from streams.consumer import Record
from streams.follower import LogConsumer
from streams.producer import KafkaEventAppender
from streams.schema_registry import SchemaRegistry
from streams.topics import Topic, topic_name
from streams.topology import Subscription
from tests.factories import goal_received
from tests.integration.test_projection_store import isolated_settings

pytestmark = pytest.mark.usefixtures("stack")


class Stuck:
    """A handler that holds its first batch until released."""

    name = "stuck"
    transient: tuple[type[BaseException], ...] = ()

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.applied = 0

    async def apply(self, topic: str, partition: int, records: Sequence[Record]) -> None:
        self.entered.set()
        await self.release.wait()
        self.applied += len(records)

    async def resume_at(
        self, partitions: Sequence[tuple[str, int]]
    ) -> Mapping[tuple[str, int], int] | None:
        return None


async def _lag_until(labels: dict[str, str], wanted: float, timeout_s: float = 20.0) -> float:
    deadline = time.monotonic() + timeout_s
    while True:
        value = REGISTRY.get_sample_value("omnihub_consumer_lag", labels)
        if value == wanted or time.monotonic() > deadline:
            return -1.0 if value is None else value
        await asyncio.sleep(0.25)


async def test_a_stuck_consumer_shows_its_lag_growing_then_back_to_zero() -> None:
    settings = isolated_settings()
    await ensure_declared_topics(settings)
    codec = EventCodec(SchemaRegistry.from_dir(settings.schemas_dir))
    handler = Stuck()
    sub = Subscription("lag-test", (Topic.RUNS,), None)
    consumer = LogConsumer(settings, sub, codec, [handler], group_id=settings.topic_prefix)
    appender = KafkaEventAppender(settings, codec)
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        (first,) = await appender.append_many([goal_received("run-lag")])
        await asyncio.wait_for(handler.entered.wait(), 30)
        await appender.append_many([goal_received("run-lag") for _ in range(20)])
        labels = {
            "consumer": "lag-test",
            "topic": topic_name(settings, Topic.RUNS),
            "partition": str(first.partition),
        }
        # The 20 behind the held batch: before a session's first batch is applied, the
        # fetch position (past that batch) stands in for the applied one.
        assert await _lag_until(labels, 20.0) == 20.0
        handler.release.set()
        assert await _lag_until(labels, 0.0) == 0.0
        assert handler.applied == 21
    finally:
        handler.release.set()
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 30)
        await appender.stop()
