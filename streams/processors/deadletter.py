"""The dead-letter topic: records a processor could not decode or fold, with the reason.

A dead-letter record keeps the original key, value and headers and adds
``dlq.reason``, ``dlq.detail``, ``dlq.source`` (``topic:partition:offset``) and
``dlq.processor``; its key is the source position, so a re-dead-lettered record (after
a crash between the dead-letter write and the position commit) is recognisable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from aiokafka import AIOKafkaProducer

from omnihub.settings import Settings
from streams.producer import producer_config
from streams.topics import Topic, topic_name


@dataclass(frozen=True)
class DeadLetter:
    """A record that goes to the dead-letter topic instead of a read model."""

    topic: str
    partition: int
    offset: int
    reason: str  # bad_header, unknown_schema, corrupt_body, fold_failed:<sink>, ...
    detail: str
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = ()

    @property
    def source(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"


class DeadLetterWriter(Protocol):
    """Where processors put what they cannot handle."""

    async def send(self, letter: DeadLetter) -> None:
        """Durably write ``letter``; raises if the log does not acknowledge it."""
        ...


class KafkaDeadLetterWriter:
    """:class:`DeadLetterWriter` on an idempotent producer to the dead-letter topic."""

    def __init__(self, settings: Settings, processor: str) -> None:
        self._topic = topic_name(settings, Topic.DEADLETTER)
        self._processor = processor
        config = {**producer_config(settings), "client_id": f"omnihub-dlq-{processor}"}
        self._producer = AIOKafkaProducer(**config)

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def send(self, letter: DeadLetter) -> None:
        headers = [
            *[(k, v) for k, v in letter.headers if not k.startswith("dlq.")],
            ("dlq.reason", letter.reason.encode()),
            ("dlq.detail", letter.detail[:2000].encode()),
            ("dlq.source", letter.source.encode()),
            ("dlq.processor", self._processor.encode()),
        ]
        await self._producer.send_and_wait(
            self._topic, value=letter.value, key=letter.source.encode(), headers=headers
        )
