"""The dead-letter topic: records a consumer could not decode or handle, with the reason.

One format for every consumer. A dead letter keeps the original key, value and headers
(less any earlier ``dlq.*``) and adds:

- ``dlq.reason``: ``bad_header``, ``unknown_schema``, ``corrupt_body`` (undecodable),
  or ``fold_failed:<handler>`` (decoded, but the named handler kept raising on it);
- ``dlq.detail``: the error, at most 2,000 characters;
- ``dlq.source``: ``topic:partition:offset`` of the original record;
- ``dlq.consumer``: the consumer that gave up on it (``projector``, ``gateway-keys``...);
- ``dlq.at``: when, UTC, ISO 8601.

A record that is bad for every consumer is dead-lettered once by each, and
``dlq.consumer`` tells them apart. The Kafka key is ``<consumer>@<source>``, so a letter
written again after a crash (between the letter and the position commit) is
recognisable as the same one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from aiokafka import AIOKafkaProducer

from omnihub.settings import Settings
from streams.producer import producer_config
from streams.topics import Topic, topic_name

HEADER_PREFIX = "dlq."
DETAIL_MAX = 2000


@dataclass(frozen=True)
class DeadLetter:
    """A record that goes to the dead-letter topic instead of a handler."""

    topic: str
    partition: int
    offset: int
    reason: str
    detail: str
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = ()

    @property
    def source(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"

    def headers_for(self, consumer: str) -> list[tuple[str, bytes]]:
        """The original headers plus this letter's ``dlq.*`` headers."""
        return [
            *[(k, v) for k, v in self.headers if not k.startswith(HEADER_PREFIX)],
            ("dlq.reason", self.reason.encode()),
            ("dlq.detail", self.detail[:DETAIL_MAX].encode()),
            ("dlq.source", self.source.encode()),
            ("dlq.consumer", consumer.encode()),
            ("dlq.at", datetime.now(UTC).isoformat(timespec="milliseconds").encode()),
        ]


class DeadLetterWriter(Protocol):
    """Where a consumer puts what it cannot handle."""

    async def send(self, letter: DeadLetter) -> None:
        """Durably write ``letter``; raises if the log does not acknowledge it."""
        ...


class KafkaDeadLetterWriter:
    """:class:`DeadLetterWriter` on an idempotent producer to the dead-letter topic."""

    def __init__(self, settings: Settings, consumer: str) -> None:
        self._topic = topic_name(settings, Topic.DEADLETTER)
        self.consumer = consumer
        config = {**producer_config(settings), "client_id": f"omnihub-dlq-{consumer}"}
        self._producer = AIOKafkaProducer(**config)

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def send(self, letter: DeadLetter) -> None:
        await self._producer.send_and_wait(
            self._topic,
            value=letter.value,
            key=f"{self.consumer}@{letter.source}".encode(),
            headers=letter.headers_for(self.consumer),
        )
