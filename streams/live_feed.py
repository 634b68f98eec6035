"""One live stream fed from Kafka: a group-less consumer of the runs topic per stream.

Each stream reads the runs topic itself (no consumer group: nothing to rebalance, and
the browser holds the position), from its ``Last-Event-ID`` or from the log's end.
Records of other tenants, runs or types are skipped on their headers and key, without
decoding. What passes is decoded, folded into the run's status, and queued as an SSE
frame for the writer. The queue is bounded (``queue_max``): when it is full the feed
stops reading Kafka and waits for the client, and a client that has not made room within
``stall_s`` is cut (the queue is dropped, a last ``cut`` frame says so). It reconnects
from the last frame it did receive, so cutting loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from domain.live import (
    Position,
    RunFolds,
    StreamFilter,
    run_event_data,
    sse_frame,
)
from streams.codec import DecodeError, EventCodec
from streams.log_reader import partitions_of
from streams.privacy import Privacy

log = logging.getLogger(__name__)

END = b""  # the queue's end marker: the writer stops after it


@dataclass(frozen=True)
class FeedOptions:
    """How a stream paces itself."""

    queue_max: int = 256  # frames that may wait for the client
    heartbeat_s: float = 15.0
    stall_s: float = 10.0  # how long a full queue may wait for the client before the cut


class LiveFeed:
    """Frames for one client; ``async with feed: async for frame in feed.frames()``."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        codec: EventCodec,
        flt: StreamFilter,
        start: Position | None,
        options: FeedOptions,
        seal: Callable[[Position], str],
        privacy: Privacy | None = None,
    ) -> None:
        self._bootstrap, self._topic, self._codec = bootstrap, topic, codec
        self._filter, self._start, self._options = flt, start, options
        self._seal = seal  # positions leave the process sealed (see domain.live)
        self._privacy = privacy  # personal fields shown opened, or as erased
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=max(options.queue_max, 2))
        self.position: Position = {}
        self.cut = False
        self._folds = RunFolds()
        self._consumer: AIOKafkaConsumer | None = None
        self._pump: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LiveFeed:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap, enable_auto_commit=False, group_id=None
        )
        await consumer.start()
        self._consumer = consumer
        try:
            parts = await partitions_of(self._bootstrap, [self._topic])
            consumer.assign(parts)
            await self._seek(consumer, parts)
        except BaseException:
            await consumer.stop()
            raise
        pos = self._seal(self.position)
        self.queue.put_nowait(sse_frame("ready", {"position": pos}, pos))
        self._pump = asyncio.create_task(self._run(consumer))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._pump
        if self._consumer is not None:
            await self._consumer.stop()

    async def _seek(self, consumer: AIOKafkaConsumer, parts: list[TopicPartition]) -> None:
        start = self._start or {}
        if not start:
            await consumer.seek_to_end(*parts)
        for tp in parts:
            at = start.get((tp.topic, tp.partition))
            if start and at is None:
                await consumer.seek_to_beginning(tp)  # a partition the client never saw
            elif at is not None:
                consumer.seek(tp, at)
            self.position[(tp.topic, tp.partition)] = await consumer.position(tp)

    async def frames(self) -> AsyncIterator[bytes]:
        """The frames in order, until the stream is cut or closed."""
        while True:
            frame = await self.queue.get()
            if frame is END:
                return
            yield frame

    async def _run(self, consumer: AIOKafkaConsumer) -> None:
        loop = asyncio.get_running_loop()
        quiet_since = loop.time()
        while not self.cut:
            batch = await consumer.getmany(timeout_ms=500, max_records=500)
            for msgs in batch.values():
                for msg in msgs:
                    if await self._take(msg):
                        quiet_since = loop.time()
            if loop.time() - quiet_since >= self._options.heartbeat_s:
                # The heartbeat carries the position too: records skipped for other
                # tenants are behind the client, and a reconnect need not read them again.
                pos = self._seal(self.position)
                await self._offer(sse_frame("heartbeat", {"position": pos}, pos))
                quiet_since = loop.time()

    async def _take(self, msg: ConsumerRecord[bytes, bytes]) -> bool:
        """Queue ``msg`` as a frame if the stream carries it; whether it did."""
        self.position[(msg.topic, msg.partition)] = msg.offset + 1
        headers = {k: v.decode(errors="replace") for k, v in (msg.headers or ())}
        run_id = msg.key.decode(errors="replace") if msg.key else None
        if not self._filter.admits(headers.get("tenant_id"), run_id, headers.get("event_type")):
            return False
        try:
            event = self._codec.decode(msg.value or b"")
        except DecodeError:
            return False  # the consumers dead-letter it; a dashboard has nothing to show
        if self._privacy is not None:
            event = await self._privacy.open_one(event)
        view, known = self._folds.apply(event)
        data = run_event_data(event, view, known)
        return await self._offer(sse_frame("run_event", data, self._seal(self.position)))

    async def _offer(self, frame: bytes) -> bool:
        """Queue ``frame``, waiting for room at most ``stall_s``; else cut the client."""
        try:
            await asyncio.wait_for(self.queue.put(frame), self._options.stall_s)
        except TimeoutError:
            self._cut()
            return False
        return True

    def _cut(self) -> None:
        """The client is too slow: drop what waits for it and end the stream."""
        self.cut = True
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(sse_frame("cut", {"reason": "slow-client"}))
        self.queue.put_nowait(END)
        log.info("live stream for %s cut: client too slow", self._filter.tenant_id)
