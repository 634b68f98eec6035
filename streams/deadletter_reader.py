"""The newest dead letters, for the dashboard's operations page (no consumer group)."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer

from streams.deadletter import HEADER_PREFIX
from streams.log_reader import partitions_of


async def recent_dead_letters(
    bootstrap: str, topic: str, tenant_id: str, limit: int = 50
) -> list[dict[str, Any]]:
    """The last ``limit`` letters of each partition whose original record was the
    tenant's (its ``tenant_id`` header), newest first, with their reasons."""
    parts = await partitions_of(bootstrap, [topic])
    if not parts:
        return []
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        starts = await consumer.beginning_offsets(parts)
        out: list[dict[str, Any]] = []
        for tp in parts:
            first = max(starts[tp], ends[tp] - limit)
            if first >= ends[tp]:
                continue
            consumer.seek(tp, first)
            while await consumer.position(tp) < ends[tp]:
                batch = await consumer.getmany(tp, timeout_ms=1000, max_records=limit)
                out += [_letter(m) for m in batch.get(tp, []) if m.offset < ends[tp]]
    finally:
        await consumer.stop()
    mine = [x for x in out if x["tenant_id"] == tenant_id]
    return sorted(mine, key=lambda x: x["timestamp_ms"], reverse=True)[:limit]


def _letter(msg: Any) -> dict[str, Any]:
    headers = {k: v.decode(errors="replace") for k, v in (msg.headers or ())}
    dlq = {k[len(HEADER_PREFIX) :]: v for k, v in headers.items() if k.startswith(HEADER_PREFIX)}
    return {
        "offset": msg.offset,
        "partition": msg.partition,
        "timestamp_ms": msg.timestamp,
        "tenant_id": headers.get("tenant_id"),
        "event_type": headers.get("event_type"),
        "reason": dlq.get("reason"),
        "detail": dlq.get("detail"),
        "source": dlq.get("source"),
        "consumer": dlq.get("consumer"),
    }
