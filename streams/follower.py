"""Following the log: the consumer-group half of the one consumer.

A :class:`LogConsumer` reads its subscription's topics (:mod:`streams.topology`) in a
consumer group named after it, and puts each partition's batch through the
:class:`~streams.consumer.Pipeline`; partitions side by side, one partition in order.
After a batch it commits the group offset. On (re)assignment it seeks each partition to
the lowest position its handlers stored, so a restarted process resumes where its
effects are, not where Kafka thinks it was. Static membership (``instance_id``) lets a
restarted process take its partitions back without a rebalance.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from streams.consumer import Pipeline, RawRecord, Stopping
from streams.log_reader import partitions_of
from streams.telemetry import report_lag

log = logging.getLogger(__name__)


class LogConsumer(Pipeline):
    """The pipeline fed from Kafka: :meth:`run` in a group, or :meth:`catch_up`."""

    async def run(self, stop: asyncio.Event, ready: asyncio.Event | None = None) -> None:
        """Consume until ``stop`` is set. A failed session starts again from the stored
        positions. ``ready`` is set once partitions are assigned and positioned."""
        self._stop = stop
        async with self._deadletter_writer():
            while not stop.is_set():
                try:
                    await self._session(stop, ready)
                except Stopping:
                    return
                except Exception:
                    log.exception("%s: failed; starting again from the stored positions", self.name)
                    try:
                        await self._pause(1.0)
                    except Stopping:
                        return

    async def _session(self, stop: asyncio.Event, ready: asyncio.Event | None) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.kafka_bootstrap,
            group_id=self._group,
            group_instance_id=self._instance_id,
            client_id=f"omnihub-{self.name}",
            enable_auto_commit=False,
            auto_offset_reset="latest" if self._latest else "earliest",
            session_timeout_ms=int(self._settings.consumer_session_timeout_s * 1000),
            heartbeat_interval_ms=int(self._settings.consumer_heartbeat_s * 1000),
            rebalance_timeout_ms=int(self._settings.consumer_session_timeout_s * 1000),
            max_partition_fetch_bytes=4 << 20,
            **_gathering(self._settings.consumer_gather_ms),
        )
        await consumer.start()
        self.forget_applied()  # a new session: the stored positions say where we are
        lag = asyncio.create_task(report_lag(self.name, consumer, self._done))
        try:
            await self._wait_for_topics()
            consumer.subscribe(self._topics, listener=_Seek(self, consumer))
            await self._loop(consumer, stop, ready)
        finally:
            lag.cancel()
            await consumer.stop()

    async def _loop(
        self, consumer: AIOKafkaConsumer, stop: asyncio.Event, ready: asyncio.Event | None
    ) -> None:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=300, max_records=self._max_records)
            if ready is not None and not ready.is_set() and consumer.assignment():
                for tp in consumer.assignment():  # resolve "latest" now, not at first fetch
                    await consumer.position(tp)
                ready.set()
            if not batch:
                continue
            await asyncio.gather(
                *(self.process(tp.topic, tp.partition, _raws(msgs)) for tp, msgs in batch.items())
            )
            offsets = {tp: msgs[-1].offset + 1 for tp, msgs in batch.items() if msgs}
            try:
                await consumer.commit(offsets)
            except KafkaError as exc:  # a rebalance: records may come again, harmlessly
                log.warning("%s: offset commit failed (%s)", self.name, exc)

    async def seek_to_positions(
        self, consumer: AIOKafkaConsumer, parts: Sequence[TopicPartition]
    ) -> None:
        """Seek each of ``parts`` to the lowest position any handler stored."""
        if not parts:
            return
        keys = [(tp.topic, tp.partition) for tp in parts]
        stored = [await h.resume_at(keys) for h in self.handlers]
        tracked = [s for s in stored if s is not None]
        if not tracked:
            return  # at-least-once handlers: the group's committed offsets
        for tp, key in zip(parts, keys, strict=True):
            if all(key in s for s in tracked):
                start = min(s[key] for s in tracked)
                consumer.seek(tp, start)
                self.applied_below(tp.topic, tp.partition, start)
            else:
                # Not awaited offset lookups: inside the rebalance callback they would
                # block the group while a partition's leader is down. Offset 0 below the
                # log's start resets to the earliest (auto_offset_reset).
                consumer.seek(tp, 0)

    async def catch_up(self) -> None:
        """Apply everything up to the log's end as of now, then return."""
        async with self._deadletter_writer():
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._settings.kafka_bootstrap,
                enable_auto_commit=False,
                auto_offset_reset="earliest",  # a handler with no stored position: all
                max_partition_fetch_bytes=4 << 20,
            )
            await consumer.start()
            self.forget_applied()
            try:
                parts = await self._wait_for_topics()
                consumer.assign(parts)
                await self.seek_to_positions(consumer, parts)
                ends = await consumer.end_offsets(parts)
                todo = {tp for tp in parts if await consumer.position(tp) < ends[tp]}
                while todo:
                    batch = await consumer.getmany(
                        *todo, timeout_ms=500, max_records=self._max_records
                    )
                    for tp, msgs in batch.items():
                        await self.process(
                            tp.topic, tp.partition, _raws([m for m in msgs if m.offset < ends[tp]])
                        )
                    todo = {tp for tp in todo if await consumer.position(tp) < ends[tp]}
            finally:
                await consumer.stop()

    async def _wait_for_topics(self, wait_s: float = 10.0) -> list[TopicPartition]:
        """Every partition of the topics, waiting out metadata that lags their creation."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while True:
            parts = await partitions_of(self._settings.kafka_bootstrap, self._topics)
            missing = set(self._topics) - {tp.topic for tp in parts}
            if not missing:
                return parts
            if loop.time() > deadline:
                raise RuntimeError(f"{self.name}: topics without partitions: {sorted(missing)}")
            await asyncio.sleep(0.2)


class _Seek(ConsumerRebalanceListener):  # type: ignore[misc]
    """Positions newly assigned partitions where the handlers' effects are."""

    def __init__(self, owner: LogConsumer, consumer: AIOKafkaConsumer) -> None:
        self._owner = owner
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: object) -> None:
        return None

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        await self._owner.seek_to_positions(self._consumer, list(assigned))


def _gathering(ms: int) -> dict[str, int]:
    """Fetch settings that let the broker gather up to ``ms`` for a fuller batch."""
    if ms <= 0:
        return {}  # aiokafka's defaults: answer as soon as one record is there
    return {"fetch_min_bytes": 64 << 10, "fetch_max_wait_ms": ms}


def _raws(msgs: Sequence[ConsumerRecord[bytes, bytes]]) -> list[RawRecord]:
    return [RawRecord(m.offset, m.key, m.value, list(m.headers or ())) for m in msgs]
