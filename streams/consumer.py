"""The one consumer: every stream processor is a :class:`~streams.follower.LogConsumer`
plus its handlers. This module is its Kafka-agnostic half, the pipeline a partition's
batch goes through (rebuilds feed it directly):

1. records of other event types are skipped on their ``event_type`` header, undecoded;
2. the rest are decoded once; an undecodable record is dead-lettered (one letter per
   consumer, :mod:`streams.deadletter`) and handed on as ``event=None``;
3. each handler gets the batch in turn. A handler applies it exactly once (it keeps its
   position with its effect, :mod:`streams.positions`) or at least once (its effect is
   idempotent and the group's committed offset is its position). An infrastructure
   failure (the handler's ``transient`` errors) is retried until it passes; any other
   failure is narrowed to the record that causes it, which is retried a few times, then
   dead-lettered as ``fold_failed:<handler>`` and handed on as ``event=None``, so that
   the handler's position moves past it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

from domain.events import Event, SubjectErased
from omnihub.settings import Settings
from streams.codec import DecodeError, EventCodec
from streams.deadletter import DeadLetter, DeadLetterWriter, KafkaDeadLetterWriter
from streams.privacy import SEALED_BYTES, Privacy
from streams.telemetry import dead_lettered, folded, handling, traceparent_of
from streams.topics import topic_name
from streams.topology import Subscription

log = logging.getLogger(__name__)

Partition = tuple[str, int]


@dataclass(frozen=True)
class RawRecord:
    """One Kafka record as consumed."""

    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = ()


@dataclass(frozen=True)
class Record:
    """One record as a handler sees it: ``event`` is None when the record is not for
    this consumer, could not be decoded, or was dead-lettered by this handler."""

    offset: int
    event: Event | None
    trace: bytes | None = None  # the appender's ``traceparent``: carry the trace on


class Handler(Protocol):
    """What a processor writes: how to apply a partition's batch, and where it is."""

    name: str
    transient: tuple[type[BaseException], ...]  # infrastructure errors: retry, never skip

    async def apply(self, topic: str, partition: int, records: Sequence[Record]) -> None:
        """Apply ``records`` (one partition, ascending offsets, never empty)."""
        ...

    async def resume_at(self, partitions: Sequence[Partition]) -> Mapping[Partition, int] | None:
        """The next offset to apply per partition (missing: from the start), or None to
        resume from the group's committed offsets (an at-least-once handler)."""
        ...


class Stopping(Exception):
    """The consumer was asked to stop while it waited out a failure."""


class Pipeline:
    """Decodes a subscription's records and applies them with its handlers."""

    def __init__(
        self,
        settings: Settings,
        subscription: Subscription,
        codec: EventCodec,
        handlers: Sequence[Handler],
        *,
        deadletters: DeadLetterWriter | None = None,
        group_id: str | None = None,
        instance_id: str | None = None,
        start_at_latest: bool = False,
        max_records: int | None = None,
        retry_delay_s: float = 0.5,
        max_attempts: int = 3,
        announce_deadletters: bool = True,
        privacy: Privacy | None = None,
    ) -> None:
        self.name = subscription.consumer
        self.subscription = subscription
        self._settings = settings
        self._codec = codec
        self.handlers = list(handlers)
        self._dlq = deadletters
        self._owns_dlq = deadletters is None
        self._group = group_id or f"{settings.topic_prefix}-{subscription.consumer}"
        self._instance_id = instance_id or settings.consumer_instance_id
        self._latest = start_at_latest
        self._max_records = max_records or settings.consumer_max_records
        self._retry_delay_s = retry_delay_s
        self._max_attempts = max_attempts
        # A rebuild replays records the live consumer dead-lettered already: it counts
        # them, and an error line for each would cry wolf.
        self._announce = announce_deadletters
        # Opens sealed personal fields for the handlers; without it they see ciphertext
        # (the audit chainer wants that: it hashes what the log holds).
        self._privacy = privacy
        self._topics = [topic_name(settings, t) for t in subscription.topics]
        self._stop = asyncio.Event()
        # Per partition, the offset every handler has applied up to in this process:
        # a record below it that comes again (a rebalance seeks back while a batch is in
        # flight) is neither decoded nor dead-lettered twice.
        self._done: dict[Partition, int] = {}

    async def process(self, topic: str, partition: int, raws: Sequence[RawRecord]) -> None:
        """Decode one partition's records and apply them with every handler."""
        done = self._done.get((topic, partition), 0)
        raws = [raw for raw in raws if raw.offset >= done]
        if not raws:
            return
        records = [await self._decode(topic, partition, raw) for raw in raws]
        if self._privacy is not None:
            records = await self._open(self._privacy, records, raws)
        traces = [r.trace for r in records if r.event is not None]
        for handler in self.handlers:
            with handling(self.name, handler.name, topic, partition, traces):
                await self._apply(handler, topic, partition, records, raws)
        self._done[(topic, partition)] = raws[-1].offset + 1
        folded(self.name, len(raws))

    def forget_applied(self) -> None:
        """Trust only the handlers' stored positions from now on (a new session)."""
        self._done.clear()

    def applied_below(self, topic: str, partition: int, offset: int) -> None:
        """Note that every handler has applied ``partition`` below ``offset``."""
        key = (topic, partition)
        self._done[key] = max(self._done.get(key, 0), offset)

    async def _decode(self, topic: str, partition: int, raw: RawRecord) -> Record:
        types = self.subscription.types
        if types is not None:
            kind = dict(raw.headers).get("event_type")
            if kind is not None and kind.decode(errors="replace") not in types:
                return Record(raw.offset, None)
        try:
            event = self._codec.decode(raw.value or b"")
        except DecodeError as exc:
            await self._dead_letter(topic, partition, raw, exc.reason, exc.detail)
            return Record(raw.offset, None)
        if types is not None and event.EVENT_TYPE not in types:
            return Record(raw.offset, None)
        return Record(raw.offset, event, traceparent_of(raw.headers))

    @staticmethod
    async def _open(
        privacy: Privacy, records: list[Record], raws: Sequence[RawRecord]
    ) -> list[Record]:
        """Open the batch's sealed fields; an erasure in it is honoured from then on."""
        for r in records:
            if isinstance(r.event, SubjectErased):
                privacy.forget(r.event.key_id)
        # Only records whose bytes hold a sealed value are looked into, and only their
        # personal fields: a sealed copy elsewhere (an audit record's details) stays as
        # the chain hashed it, so its read model verifies; its readers open it.
        sealed = [
            i
            for i, (r, raw) in enumerate(zip(records, raws, strict=True))
            if r.event is not None
            and privacy.paths(r.event.EVENT_TYPE)
            and SEALED_BYTES in (raw.value or b"")
        ]
        if not sealed:
            return records
        opened = await privacy.open([e for i in sealed if (e := records[i].event) is not None])
        out = list(records)
        for i, event in zip(sealed, opened, strict=True):
            out[i] = Record(out[i].offset, event, out[i].trace)
        return out

    async def _apply(
        self,
        handler: Handler,
        topic: str,
        partition: int,
        records: Sequence[Record],
        raws: Sequence[RawRecord],
    ) -> None:
        try:
            await self._retrying(handler, topic, partition, records)
            return
        except Stopping:
            raise
        except Exception as exc:  # one record of the batch cannot be applied: find which
            log.warning(
                "%s/%s: batch at %s:%d failed (%r); applying one by one",
                self.name,
                handler.name,
                topic,
                partition,
                exc,
            )
        for record, raw in zip(records, raws, strict=True):
            await self._apply_one(handler, topic, partition, record, raw)

    async def _apply_one(
        self, handler: Handler, topic: str, partition: int, record: Record, raw: RawRecord
    ) -> None:
        for attempt in range(1, self._max_attempts + 1):
            try:
                await self._retrying(handler, topic, partition, [record])
                return
            except Stopping:
                raise
            except Exception as exc:
                if attempt == self._max_attempts:
                    reason = f"fold_failed:{handler.name}"
                    await self._dead_letter(topic, partition, raw, reason, repr(exc))
                    await self._retrying(handler, topic, partition, [Record(record.offset, None)])
                    return
                await self._pause(self._retry_delay_s * attempt)

    async def _retrying(
        self, handler: Handler, topic: str, partition: int, records: Sequence[Record]
    ) -> None:
        delay = self._retry_delay_s
        while True:
            try:
                await handler.apply(topic, partition, records)
                return
            except handler.transient as exc:
                log.warning(
                    "%s/%s unavailable (%r); retrying in %.1fs", self.name, handler.name, exc, delay
                )
            await self._pause(delay)
            delay = min(delay * 2, 10.0)

    async def _dead_letter(
        self, topic: str, partition: int, raw: RawRecord, reason: str, detail: str
    ) -> None:
        if self._announce:
            log.error(
                "%s: dead-lettering %s:%d:%d: %s %s",
                self.name,
                topic,
                partition,
                raw.offset,
                reason,
                detail,
            )
        letter = DeadLetter(
            topic, partition, raw.offset, reason, detail, raw.key, raw.value, raw.headers
        )
        delay = self._retry_delay_s
        while True:
            try:
                await self._deadletters().send(letter)
                break
            except Exception as exc:  # Kafka down: never skip a poison record unrecorded
                log.warning("dead-letter write failed (%r); retrying in %.1fs", exc, delay)
            await self._pause(delay)
            delay = min(delay * 2, 10.0)
        dead_lettered(self.name, reason)

    def _deadletters(self) -> DeadLetterWriter:
        if self._dlq is None:
            raise RuntimeError(f"{self.name}: no dead-letter writer (the consumer is not running)")
        return self._dlq

    async def _pause(self, seconds: float) -> None:
        if self._stop.is_set():
            raise Stopping
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except TimeoutError:
            return
        raise Stopping

    @asynccontextmanager
    async def _deadletter_writer(self) -> AsyncIterator[None]:
        """Open the consumer's own dead-letter producer for a run, unless one was given."""
        if not self._owns_dlq:
            yield
            return
        writer = KafkaDeadLetterWriter(self._settings, self.name)
        await writer.start()
        self._dlq = writer
        try:
            yield
        finally:
            self._dlq = None
            await writer.stop()
