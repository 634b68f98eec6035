"""Tracing and metrics of the wire layer: appends, handler batches, consumer lag.

Kept apart from the producer and the consumer so that their hot paths only call in:

- :func:`appending` wraps one ``append_many``: a PRODUCER span whose context goes into
  every record's ``traceparent`` header, the appends counter and the latency histogram
  (once per topic per call, not per event);
- :func:`handling` wraps one handler's batch: one span, parented on the records' trace
  when the batch belongs to one trace, linked to each record's context otherwise (no
  span per event);
- :func:`record_lag` sets the lag gauge from what the consumer already knows (its
  positions and the high watermarks of its last fetch, no extra request).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry.trace import SpanKind, Status, StatusCode

from domain.events import Event
from omnihub import metrics, tracing


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


def record_lag(consumer: str, client: Any, positions: dict[Any, int]) -> None:
    """Set ``omnihub_consumer_lag`` for partitions whose next offset is in ``positions``,
    against the high watermark the client saw in its last fetch."""
    for tp, position in positions.items():
        high = client.highwater(tp)
        if high is not None:
            lag = max(high - position, 0)
            metrics.CONSUMER_LAG.labels(consumer, tp.topic, str(tp.partition)).set(lag)
