"""Tracing and metrics of the wire layer: appends, handler batches, consumer lag.

Kept apart from the producer and the consumer so that their hot paths only call in:

- :func:`appending` wraps one ``append_many``: a PRODUCER span whose context goes into
  every record's ``traceparent`` header, the appends counter and the latency histogram
  (once per topic per call, not per event);
- :func:`handling` wraps one handler's batch: one span, parented on the records' trace
  when the batch belongs to one trace, linked to each record's context otherwise (no
  span per event);
- :func:`report_lag` keeps the lag gauge current beside the loop (one end-offsets
  request every few seconds, none per batch).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry.trace import SpanKind, Status, StatusCode

from domain.events import Event
from omnihub import metrics, tracing

log = logging.getLogger(__name__)


def traceparent_of(headers: Sequence[tuple[str, bytes]]) -> bytes | None:
    """A record's ``traceparent`` header, if it has one."""
    for key, value in headers:
        if key == tracing.TRACEPARENT:
            return value
    return None


def _append_attributes(events: Sequence[Event]) -> dict[str, Any]:
    first = events[0].envelope
    attrs: dict[str, Any] = {
        "messaging.system": "kafka",
        "messaging.batch.message_count": len(events),
        "omnihub.event_types": sorted({e.EVENT_TYPE for e in events}),
        tracing.TENANT_ID: first.tenant_id,
    }
    if all(e.envelope.run_id == first.run_id for e in events):
        attrs[tracing.RUN_ID] = first.run_id
    return attrs


@contextmanager
def appending(events: Sequence[Event], topics: Sequence[str]) -> Iterator[bytes | None]:
    """Time and trace one append call; yields the ``traceparent`` for its records."""
    started = time.perf_counter()
    outcome = "unavailable"
    if tracing.enabled() and events:
        span_cm: Any = tracing.tracer().start_as_current_span(
            "append", kind=SpanKind.PRODUCER, attributes=_append_attributes(events)
        )
    else:
        span_cm = None
    try:
        if span_cm is None:
            yield None
        else:
            with span_cm:
                yield tracing.current_traceparent()
        outcome = "ok"
    finally:
        elapsed = time.perf_counter() - started
        for topic, count in Counter(topics).items():
            metrics.APPENDS.labels(topic, outcome).inc(count)
            if outcome == "ok":
                metrics.APPEND_DURATION.labels(topic).observe(elapsed)


@contextmanager
def handling(
    consumer: str, handler: str, topic: str, partition: int, traceparents: Sequence[bytes | None]
) -> Iterator[None]:
    """One span around a handler's batch; none when tracing is off or the batch holds no
    event for this consumer (``traceparents`` has one entry per event, None if untraced)."""
    if not tracing.enabled() or not traceparents:
        yield
        return
    parent, links = tracing.batch_parent(traceparents)
    attrs: dict[str, Any] = {
        "omnihub.consumer": consumer,
        "omnihub.handler": handler,
        "messaging.destination.name": topic,
        "messaging.destination.partition.id": str(partition),
        "messaging.batch.message_count": len(traceparents),
    }
    with tracing.tracer().start_as_current_span(
        f"{consumer}/{handler} apply",
        context=parent,
        kind=SpanKind.CONSUMER,
        links=links,
        attributes=attrs,
        record_exception=True,
        set_status_on_exception=True,
    ) as span:
        yield
        span.set_status(Status(StatusCode.OK))


def folded(consumer: str, count: int) -> None:
    """``count`` records went through every handler of ``consumer``."""
    metrics.EVENTS_FOLDED.labels(consumer).inc(count)


def dead_lettered(consumer: str, reason: str) -> None:
    """One record of ``consumer`` went to the dead-letter topic for ``reason``."""
    metrics.DEADLETTERS.labels(consumer, reason).inc()


async def report_lag(
    consumer: str, client: Any, applied: Mapping[tuple[str, int], int], every_s: float = 5.0
) -> None:
    """Keep ``omnihub_consumer_lag`` current for the client's assigned partitions until
    cancelled: the log's end offset less what every handler applied (``applied``, else,
    before a session's first batch of the partition is applied, the fetch position,
    which is past that batch). It runs beside the loop, so a consumer stuck on a batch shows
    its lag growing; partitions given away lose their series."""
    shown: set[tuple[str, int]] = set()
    while True:
        await asyncio.sleep(every_s)
        try:
            async with asyncio.timeout(every_s):
                now = await _set_lag(consumer, client, applied)
        except Exception as exc:  # metrics never stop a consumer; the next round retries
            log.warning("%s: cannot read the lag (%r)", consumer, exc)
            continue
        for topic, partition in shown - now:
            with contextlib.suppress(KeyError):
                metrics.CONSUMER_LAG.remove(consumer, topic, str(partition))
        shown = now


async def _set_lag(
    consumer: str, client: Any, applied: Mapping[tuple[str, int], int]
) -> set[tuple[str, int]]:
    parts = list(client.assignment())
    ends = await client.end_offsets(parts) if parts else {}
    for tp in parts:
        position = applied.get((tp.topic, tp.partition))
        if position is None:
            position = await client.position(tp)
        lag = max(ends[tp] - position, 0)
        metrics.CONSUMER_LAG.labels(consumer, tp.topic, str(tp.partition)).set(lag)
    return {(tp.topic, tp.partition) for tp in parts}
