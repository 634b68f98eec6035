"""Reading the log without a consumer group: for ``omnihub tail``, audits and rebuilds."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from domain.events import Event
from streams.codec import DecodeError, EventCodec


@dataclass(frozen=True)
class LogRecord:
    """One record of the log: where it is and what it says (or why it can't be read)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    event: Event | None
    error: DecodeError | None
    event_type: str | None  # from the header, even when the body can't be decoded


async def read_log(
    bootstrap: str,
    codec: EventCodec,
    topics: Sequence[str],
    *,
    from_beginning: bool = True,
    follow: bool = False,
    idle_timeout_ms: int = 1000,
    start_at: Mapping[TopicPartition, int] | None = None,
    stop_at: Mapping[TopicPartition, int] | None = None,
) -> AsyncIterator[LogRecord]:
    """Every record of ``topics`` in partition order.

    Without ``follow`` it stops at the end offsets seen when it started, or earlier at
    ``stop_at`` (per partition, exclusive); with ``follow`` it keeps waiting for new
    records. ``start_at`` reads only the partitions it names, each from the given offset
    (one run's events, say, from its first one).
    """
    parts = list(start_at) if start_at else await partitions_of(bootstrap, topics)
    if not parts:
        return
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    try:
        consumer.assign(parts)
        if start_at:
            for tp, offset in start_at.items():
                consumer.seek(tp, offset)
        elif from_beginning:
            await consumer.seek_to_beginning(*parts)
        else:
            await consumer.seek_to_end(*parts)
        ends = await consumer.end_offsets(parts)
        if stop_at:
            ends = {tp: min(end, stop_at.get(tp, end)) for tp, end in ends.items()}
        remaining = {tp for tp in parts if (await consumer.position(tp)) < ends[tp]}
        while follow or remaining:
            batch = await consumer.getmany(
                *(() if follow else remaining), timeout_ms=idle_timeout_ms, max_records=500
            )
            for tp, messages in batch.items():
                for msg in messages:
                    if not follow and msg.offset >= ends[tp]:
                        break
                    yield _record(codec, msg)
            if not follow:  # positions, not offsets seen: control records leave gaps
                remaining = {tp for tp in remaining if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()


async def partitions_of(bootstrap: str, topics: Sequence[str]) -> list[TopicPartition]:
    """Every partition of ``topics`` that exists, asked of the cluster now."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics))
    finally:
        await admin.close()
    return [
        TopicPartition(t["topic"], p["partition"])
        for t in described
        if t["error_code"] == 0
        for p in sorted(t["partitions"], key=lambda p: p["partition"])
    ]


def _record(codec: EventCodec, msg: ConsumerRecord[bytes, bytes]) -> LogRecord:
    raw_type = dict(msg.headers or ()).get("event_type")
    event: Event | None = None
    error: DecodeError | None = None
    try:
        event = codec.decode(msg.value or b"")
    except DecodeError as exc:
        error = exc
    return LogRecord(
        topic=msg.topic,
        partition=msg.partition,
        offset=msg.offset,
        timestamp_ms=msg.timestamp,
        event=event,
        error=error,
        event_type=raw_type.decode() if raw_type else None,
    )
