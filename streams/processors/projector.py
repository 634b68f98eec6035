"""The projector's handler: decode a partition's batch, fold it into every sink.

Kafka-agnostic (the faust agent in :mod:`streams.processors.app` feeds it), so it is
tested with real sinks and no broker. Poison records go to the dead-letter topic and
processing continues; an unavailable database is retried, never dead-lettered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import asyncpg
import redis.exceptions

from projections.pg_store import ApplyResult, Record
from streams.codec import DecodeError, EventCodec
from streams.processors.deadletter import DeadLetter, DeadLetterWriter

log = logging.getLogger(__name__)

# Failures of the infrastructure, not of the record: retry the batch, never dead-letter.
TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)


@dataclass(frozen=True)
class RawRecord:
    """One Kafka record as consumed."""

    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = ()


class Sink(Protocol):
    """A read model that applies a partition's records exactly once."""

    name: str

    async def apply(self, topic: str, partition: int, records: Sequence[Record]) -> ApplyResult:
        """Apply records past the sink's stored position; skip the rest."""
        ...


class Projector:
    """Folds batches into every sink; poison goes to ``deadletters``."""

    def __init__(
        self,
        codec: EventCodec,
        sinks: Sequence[Sink],
        deadletters: DeadLetterWriter,
        retry_delay_s: float = 0.5,
    ) -> None:
        self._codec = codec
        self._sinks = sinks
        self._dlq = deadletters
        self._retry_delay_s = retry_delay_s

    async def handle(self, topic: str, partition: int, raws: Sequence[RawRecord]) -> None:
        """Decode ``raws`` (one partition, ascending offsets) and apply them to every sink."""
        records = [await self._decode(topic, partition, raw) for raw in raws]
        for sink in self._sinks:
            await self._apply(sink, topic, partition, records, raws)

    async def _decode(self, topic: str, partition: int, raw: RawRecord) -> Record:
        try:
            return Record(raw.offset, self._codec.decode(raw.value or b""))
        except DecodeError as exc:
            await self._dead_letter(topic, partition, raw, exc.reason, exc.detail)
            return Record(raw.offset, None)

    async def _apply(
        self,
        sink: Sink,
        topic: str,
        partition: int,
        records: Sequence[Record],
        raws: Sequence[RawRecord],
    ) -> None:
        try:
            await self._retrying(sink, topic, partition, records)
            return
        except Exception as exc:  # a record of the batch cannot be folded: find which
            log.warning("%s: batch at %s:%d failed (%r); applying one by one",
                        sink.name, topic, partition, exc)
        for record, raw in zip(records, raws, strict=True):
            try:
                await self._retrying(sink, topic, partition, [record])
            except Exception as exc:
                await self._dead_letter(topic, partition, raw, f"fold_failed:{sink.name}",
                                        repr(exc))
                await self._retrying(sink, topic, partition, [Record(record.offset, None)])

    async def _retrying(
        self, sink: Sink, topic: str, partition: int, records: Sequence[Record]
    ) -> ApplyResult:
        delay = self._retry_delay_s
        while True:
            try:
                return await sink.apply(topic, partition, records)
            except TRANSIENT as exc:
                log.warning("%s unavailable (%r); retrying in %.1fs", sink.name, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _dead_letter(
        self, topic: str, partition: int, raw: RawRecord, reason: str, detail: str
    ) -> None:
        log.error("dead-lettering %s:%d:%d: %s %s", topic, partition, raw.offset, reason, detail)
        letter = DeadLetter(topic, partition, raw.offset, reason, detail, raw.key, raw.value,
                            raw.headers)
        delay = self._retry_delay_s
        while True:
            try:
                await self._dlq.send(letter)
                return
            except Exception as exc:  # Kafka down: never skip a poison record unrecorded
                log.warning("dead-letter write failed (%r); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
