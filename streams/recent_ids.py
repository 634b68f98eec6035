"""Which events of one type a topic took since a time: a restarted writer's memory.

A writer that stores its position after appending (the chain watcher) may have
appended a batch and died before storing; on restart it asks for the ids appended since
its last store and skips those, so the batch is not appended twice. Only the headers are
read (``event_type``, ``event_id``): nothing is decoded.
"""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer

from streams.log_reader import partitions_of


async def event_ids_since(bootstrap: str, topic: str, since_ms: int, event_type: str) -> set[str]:
    """The ``event_id`` of every ``event_type`` record in ``topic`` from ``since_ms`` on."""
    parts = await partitions_of(bootstrap, [topic])
    if not parts:
        return set()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    try:
        consumer.assign(parts)
        starts = await consumer.offsets_for_times(dict.fromkeys(parts, since_ms))
        ends = await consumer.end_offsets(parts)
        for tp in parts:
            found = starts.get(tp)
            consumer.seek(tp, found.offset if found is not None else ends[tp])
        found_ids: set[str] = set()
        remaining = {tp for tp in parts if await consumer.position(tp) < ends[tp]}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000, max_records=500)
            for messages in batch.values():
                for msg in messages:
                    headers = dict(msg.headers or ())
                    if headers.get("event_type") == event_type.encode():
                        found_ids.add(headers.get("event_id", b"").decode())
            remaining = {tp for tp in remaining if await consumer.position(tp) < ends[tp]}
        return found_ids
    finally:
        await consumer.stop()
