"""Appending events to the log: one port, one Kafka adapter.

The adapter uses an idempotent producer (``enable_idempotence``, ``acks=all``), so a
broker-side retry never duplicates a record, and every event carries a deterministic
``event_id``, so a client-side retry of the same fact is recognisable downstream.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from domain.events import Event
from omnihub.settings import Settings
from streams.codec import EventCodec
from streams.privacy import Privacy
from streams.telemetry import appending
from streams.topics import topic_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AppendResult:
    """Where an event landed in the log."""

    event_id: str
    topic: str
    partition: int
    offset: int


class LogUnavailable(Exception):
    """The log could not durably accept the events; nothing was acknowledged."""


class EventAppender(Protocol):
    """The port every writer of events uses."""

    async def append(self, event: Event) -> AppendResult:
        """Durably append one event; raises :class:`LogUnavailable`."""
        ...

    async def append_many(self, events: Sequence[Event]) -> list[AppendResult]:
        """Append several events, pipelined; each is keyed by its own ``run_id``."""
        ...


def producer_config(settings: Settings) -> dict[str, object]:
    """The producer settings the API and the benchmark baseline share."""
    return {
        "bootstrap_servers": settings.kafka_bootstrap,
        "enable_idempotence": True,
        "acks": "all",
        "linger_ms": settings.producer_linger_ms,
        "max_batch_size": settings.producer_max_batch_bytes,
        "request_timeout_ms": 15_000,
        "client_id": "omnihub-appender",
    }


def record_headers(event: Event, traceparent: bytes | None = None) -> list[tuple[str, bytes]]:
    """The headers of an appended event's record: consumers skip other event types on
    ``event_type`` undecoded; ``traceparent`` carries the trace on."""
    env = event.envelope
    headers = [
        ("event_type", env.event_type.encode()),
        ("event_id", env.event_id.encode()),
        ("tenant_id", env.tenant_id.encode()),
    ]
    if traceparent is not None:
        headers.append(("traceparent", traceparent))
    return headers


class KafkaEventAppender:
    """:class:`EventAppender` on an idempotent aiokafka producer.

    The producer starts lazily and again after a failure, so a process that came up
    while Kafka was down begins appending once Kafka is back.
    """

    def __init__(
        self,
        settings: Settings,
        codec: EventCodec,
        producer_factory: Callable[..., AIOKafkaProducer] = AIOKafkaProducer,
        timeout_s: float = 10.0,
        privacy: Privacy | None = None,
    ) -> None:
        self._settings = settings
        self._privacy = privacy  # seals personal fields; None appends them as given
        self._codec = codec
        self._factory = producer_factory
        self._timeout_s = timeout_s
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Connect now; raises :class:`LogUnavailable` if Kafka cannot be reached."""
        await self._ensure_producer()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def append(self, event: Event) -> AppendResult:
        return (await self.append_many([event]))[0]

    async def append_many(self, events: Sequence[Event]) -> list[AppendResult]:
        topics = [topic_for(self._settings, e.EVENT_TYPE) for e in events]
        if self._privacy is not None:
            try:
                events = await self._privacy.seal(events)
            except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
                raise LogUnavailable(f"cannot seal personal fields: {exc!r}") from exc
        with appending(events, topics) as traceparent:  # span, traceparent and metrics
            producer = await self._ensure_producer()
            try:
                async with asyncio.timeout(self._timeout_s):
                    futures = [await self._send(producer, e, traceparent) for e in events]
                    metas = await asyncio.gather(*futures)
            except (KafkaError, TimeoutError) as exc:
                raise LogUnavailable(f"Kafka did not acknowledge the append: {exc!r}") from exc
        return [
            AppendResult(e.envelope.event_id, m.topic, m.partition, m.offset)
            for e, m in zip(events, metas, strict=True)
        ]

    async def _send(
        self, producer: AIOKafkaProducer, event: Event, traceparent: bytes | None = None
    ) -> asyncio.Future:  # type: ignore[type-arg]
        future: asyncio.Future = await producer.send(  # type: ignore[type-arg]
            topic_for(self._settings, event.EVENT_TYPE),
            value=self._codec.encode(event),
            key=event.envelope.run_id.encode(),
            headers=record_headers(event, traceparent),
        )
        return future

    async def _ensure_producer(self) -> AIOKafkaProducer:
        if self._producer is not None:
            return self._producer
        async with self._lock:
            if self._producer is None:
                producer = self._factory(**producer_config(self._settings))
                try:
                    async with asyncio.timeout(self._timeout_s):
                        await producer.start()
                except (KafkaError, TimeoutError, OSError) as exc:
                    await producer.stop()
                    raise LogUnavailable(
                        f"cannot connect to Kafka at {self._settings.kafka_bootstrap}: {exc!r}"
                    ) from exc
                self._producer = producer
            return self._producer

    async def ping(self) -> None:
        """Ask the cluster for metadata: proves Kafka answers right now."""
        producer = await self._ensure_producer()
        await producer.client.fetch_all_metadata()
