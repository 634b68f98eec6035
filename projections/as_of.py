"""What the system knew at a moment: the log up to then, folded by the projections' fold.

For auditors. It reads Kafka, the system of record, not the read models, so it also
checks them: the same pure fold (:func:`projections.fold.fold_batch`) that feeds the
projections runs over exactly the records the log held at ``at``: those whose log
timestamp (set when OmniHub appended them) is before ``at``. A run's records are read
from its own partition only (the producer's partitioner, keyed by run id).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from domain.approval_view import ApprovalView
from domain.events import Event
from domain.run_view import RunView
from domain.timeline import TimelineEntry
from projections.fold import Loaded, fold_batch
from streams.codec import EventCodec
from streams.log_reader import partitions_of, read_log
from streams.privacy import Privacy


@dataclass
class KnownAt:
    """The runs, approvals and timelines the log held at ``at``."""

    at: datetime
    runs: dict[str, RunView] = field(default_factory=dict)
    approvals: dict[str, ApprovalView] = field(default_factory=dict)
    timeline: list[TimelineEntry] = field(default_factory=list)
    events: int = 0  # records folded
    unreadable: int = 0  # records in range that could not be decoded


async def known_at(
    bootstrap: str,
    codec: EventCodec,
    topic: str,
    at: datetime,
    *,
    run_id: str | None = None,
    tenant_id: str | None = None,
    privacy: Privacy | None = None,
) -> KnownAt:
    """Fold what ``topic`` held before ``at`` (one run's, one tenant's, or everything);
    personal fields opened with ``privacy`` (erased ones read as erased)."""
    parts = await partitions_of(bootstrap, [topic])
    if run_id is not None and parts:
        parts = [_partition_of(run_id, parts)]
    starts, stops = await _bounds(bootstrap, parts, at)
    events: list[Event] = []
    out = KnownAt(at)
    async for rec in read_log(bootstrap, codec, [topic], start_at=starts, stop_at=stops):
        if rec.event is None:
            out.unreadable += 1
            continue
        env = rec.event.envelope
        if (run_id is None or env.run_id == run_id) and (
            tenant_id is None or env.tenant_id == tenant_id
        ):
            events.append(rec.event)
    if privacy is not None:
        events = await privacy.open(events)
    changes = fold_batch(Loaded(), events)
    out.runs, out.approvals, out.timeline = changes.runs, changes.approvals, changes.timeline
    out.events = len(changes.applied_ids)
    return out


def _partition_of(run_id: str, parts: list[TopicPartition]) -> TopicPartition:
    """The partition the producer's default partitioner gave ``run_id``'s records."""
    numbers = [p.partition for p in parts]
    chosen = DefaultPartitioner()(run_id.encode(), numbers, numbers)
    return next(p for p in parts if p.partition == chosen)


async def _bounds(
    bootstrap: str, parts: list[TopicPartition], at: datetime
) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
    """Per partition: the first offset, and the first offset logged at or after ``at``."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        starts = await consumer.beginning_offsets(parts)
        ends = await consumer.end_offsets(parts)
        found = await consumer.offsets_for_times({tp: int(at.timestamp() * 1000) for tp in parts})
    finally:
        await consumer.stop()
    stops = {tp: found[tp].offset if found.get(tp) is not None else ends[tp] for tp in parts}
    return dict(starts), stops


def report(known: KnownAt, *, with_timeline: bool = True) -> dict[str, Any]:
    """``known`` as plain data: runs oldest first, their timeline, pending approvals."""
    runs = sorted(known.runs.values(), key=lambda r: (r.created_at, r.run_id))
    pending = [a for a in known.approvals.values() if a.status == "pending"]
    return {
        "at": known.at.isoformat(),
        "events": known.events,
        "unreadable": known.unreadable,
        "runs": [dataclasses.asdict(r) for r in runs],
        "timeline": [dataclasses.asdict(t) for t in known.timeline] if with_timeline else [],
        "pending_approvals": [
            dataclasses.asdict(a) for a in sorted(pending, key=lambda a: a.requested_at)
        ],
    }
