"""Reading bounded ranges of partitions without a consumer group: rebuilds and status."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.consumer import RawRecord
from streams.log_reader import partitions_of

Ranges = Mapping[tuple[str, int], tuple[int, int]]  # (topic, partition) -> [start, end)


async def end_offsets(bootstrap: str, topics: Sequence[str]) -> dict[tuple[str, int], int]:
    """The next offset to be written in every partition of ``topics``."""
    parts = await partitions_of(bootstrap, topics)
    if not parts:
        return {}
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(parts)
        return {(tp.topic, tp.partition): off for tp, off in ends.items()}
    finally:
        await consumer.stop()


async def replay(
    bootstrap: str, ranges: Ranges, batch: int = 2000
) -> AsyncIterator[tuple[str, int, list[RawRecord]]]:
    """Every record in ``ranges``, as per-partition batches in offset order."""
    todo = {k: v for k, v in ranges.items() if v[1] > v[0]}
    if not todo:
        return
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, max_partition_fetch_bytes=4 << 20
    )
    await consumer.start()
    try:
        parts = {TopicPartition(t, p): rng for (t, p), rng in todo.items()}
        consumer.assign(list(parts))
        for tp, (start, _end) in parts.items():
            consumer.seek(tp, start)
        while parts:
            got = await consumer.getmany(*parts, timeout_ms=1000, max_records=batch)
            for tp, msgs in got.items():
                end = parts[tp][1]
                raws = [
                    RawRecord(m.offset, m.key, m.value, list(m.headers or ()))
                    for m in msgs
                    if m.offset < end
                ]
                if raws:
                    yield tp.topic, tp.partition, raws
                if msgs and msgs[-1].offset + 1 >= end:
                    del parts[tp]
    finally:
        await consumer.stop()
